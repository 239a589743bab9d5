"""Write the per-frame face attributes of a VoxCeleb ``vox-png`` folder for FADM::

    python tools/data/cache_face_attributes.py data/vox-png data/vox-png/attributes.npz

Every frame of every video of the splits gets an attribute vector: with ``--extractor deca``
(and ``--deca-checkpoint``, DECA's ``deca_model.tar``) DECA's 50 expression and 6 pose
coefficients (``projects/fadm/deca.py``, spec 11.1), by default the 9-d vector of
``projects/fadm/attributes.py`` (MediaPipe face mesh: yaw, pitch, roll and 6 expression
coefficients), which needs no file. With ``--mirrored`` the attributes of every frame flipped
left-right are stored too (key ``<split>/<video>/mirrored``), which ``VoxCelebPairDataset``'s
horizontal flip needs (FOMM's augmentation; a flipped face's attributes are measured, not
guessed). A frame without a face gets NaN (``VoxCelebPairDataset`` leaves it out and says
how many). The file's keys are ``<split>/<video>``. An existing file is kept unless ``--force``;
the file is written to a temporary name first, then moved into place.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmext.datasets.voxceleb import list_videos, video_frames  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', type=Path, help="the vox-png folder (split folders inside)")
    parser.add_argument('out', type=Path, help='the .npz to write')
    parser.add_argument('--splits', nargs='+', default=['train', 'test'])
    parser.add_argument('--extractor', choices=['mediapipe', 'deca'], default='mediapipe')
    parser.add_argument('--deca-checkpoint', type=Path,
                        help="DECA's deca_model.tar (with --extractor deca)")
    parser.add_argument('--mirrored', action='store_true',
                        help='also store the attributes of the left-right flipped frames')
    parser.add_argument('--force', action='store_true', help='replace an existing file')
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        parser.error(f'{args.out} exists: pass --force to replace it')
    if args.extractor == 'deca' and args.deca_checkpoint is None:
        parser.error("--extractor deca needs --deca-checkpoint (DECA's data/deca_model.tar)")
    from PIL import Image
    from rich.progress import track

    from projects.fadm.attributes import MediaPipeFaceAttributes, NoFaceFoundError
    from projects.fadm.deca import DECAFaceAttributes
    extractor = (DECAFaceAttributes(str(args.deca_checkpoint)) if args.extractor == 'deca'
                 else MediaPipeFaceAttributes())

    def attributes(image: np.ndarray) -> np.ndarray:
        nonlocal faceless
        try:
            return extractor.vector(image)
        except NoFaceFoundError:
            faceless += 1
            return np.full(extractor.num_attributes, np.nan, np.float32)

    cache, faceless, total = {}, 0, 0
    for split in args.splits:
        for video in track(list_videos(args.data_root, split), description=split):
            rows, mirrored = [], []
            for frame in video_frames(video):
                image = np.asarray(Image.open(frame).convert('RGB'))
                rows.append(attributes(image))
                if args.mirrored:
                    mirrored.append(attributes(np.ascontiguousarray(image[:, ::-1])))
                total += 1
            cache[f'{split}/{video.name}'] = np.stack(rows)
            if args.mirrored:
                cache[f'{split}/{video.name}/mirrored'] = np.stack(mirrored)
    extractor.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + '.partial.npz')
    np.savez(partial, **cache)
    os.replace(partial, args.out)
    videos = len(cache) // (2 if args.mirrored else 1)
    print(f'{args.out}: {videos} videos, {total} frames, {faceless} without a face'
          f'{" (frames and mirrored frames)" if args.mirrored else ""}, '
          f'{extractor.num_attributes} {args.extractor} attributes per frame')


if __name__ == '__main__':
    main()
