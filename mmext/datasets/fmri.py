"""fMRI-to-image datasets: the simulated demo set, GOD (Kamitani) and BOLD5000 on the layouts
MinD-Vis's released loaders read, with CMVDM's protocol (spec 10.1).

Every dataset yields ``voxels`` (V,) float32 z-scored with statistics of its own *training*
trials, ``img`` the stimulus (H, W) or (H, W, 3) uint8, ``gt_label`` (-1 where unknown) and
``image_id``; ``PackFMRIInputs`` turns them into tensors. ``split='val'`` is carved from the
training *images* (all trials of a seeded ``val_fraction`` of them) for model selection; the
test set is never used for it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mmengine.dataset import BaseDataset

from mmext.registry import DATASETS

SPLITS = ('train', 'val', 'test')


class FMRIDataset(BaseDataset):
    """Shared part: train/val carving by image, z-scoring with training statistics.

    Subclasses implement :meth:`read_arrays`, returning ``train_voxels`` (N, V), ``train_ids``
    (N,) image ids of the trials, ``test_voxels`` (M, V) (averaged over repeats), ``test_ids``,
    ``images`` ``{'train': array, 'test': array}`` indexed by the ids, and optional ``labels``
    ``{'train': (n_img,), 'test': (m_img,)}``, and optional ``val_image_ids`` (a fixed carve).

    Args:
        split: 'train', 'val' or 'test'.
        zscore: 'voxel' (per-voxel mean and std of the training trials), 'global' (one mean and
            std over the training matrix, MinD-Vis's) or None.
        val_fraction: share of the training images whose trials form 'val'.
        val_seed: the carve's seed.
    """

    splits = SPLITS

    def __init__(self, data_root: str = '', split: str = 'train', zscore: str | None = 'voxel',
                 val_fraction: float = 0.1, val_seed: int = 0, **kwargs):
        if split not in self.splits:
            raise ValueError(f'split must be one of {self.splits}, got {split!r}')
        if zscore not in ('voxel', 'global', None):
            raise ValueError(f"zscore must be 'voxel', 'global' or None, got {zscore!r}")
        if not 0 <= val_fraction < 1:
            raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
        self.split, self.zscore = split, zscore
        self.val_fraction, self.val_seed = val_fraction, val_seed
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def read_arrays(self) -> dict:
        raise NotImplementedError

    def load_data_list(self) -> list[dict]:
        arrays = self.read_arrays()
        train_ids = np.asarray(arrays['train_ids'])
        val_images = arrays.get('val_image_ids')
        if val_images is None:
            images = np.unique(train_ids)
            rng = np.random.default_rng(self.val_seed)
            val_images = rng.choice(images, int(round(self.val_fraction * len(images))),
                                    replace=False)
        in_val = np.isin(train_ids, val_images)
        fit = arrays['train_voxels'][~in_val].astype(np.float64)
        if self.zscore == 'voxel':
            mean, std = fit.mean(0), fit.std(0)
        elif self.zscore == 'global':
            mean, std = fit.mean(), fit.std()
        else:
            mean, std = 0.0, 1.0
        std = np.where(np.asarray(std) > 1e-8, std, 1.0)
        if self.split == 'test':
            voxels, ids, source = arrays['test_voxels'], arrays['test_ids'], 'test'
        else:
            keep = in_val if self.split == 'val' else ~in_val
            voxels, ids, source = arrays['train_voxels'][keep], train_ids[keep], 'train'
        if len(voxels) == 0:
            raise ValueError(f'the {self.split!r} split of {self.data_root} is empty '
                             f'(val_fraction={self.val_fraction})')
        voxels = ((voxels - mean) / std).astype(np.float32)
        labels = arrays.get('labels', {}).get(source)
        pictures = arrays['images'][source]
        return [dict(voxels=v, img=pictures[i], image_id=int(i),
                     gt_label=int(labels[i]) if labels is not None else -1)
                for v, i in zip(voxels, ids)]

    @staticmethod
    def _require(path: Path, what: str, layout: str) -> Path:
        if not path.exists():
            raise FileNotFoundError(f'{what} not found at {path}. Expected layout: {layout}')
        return path


@DATASETS.register_module()
class SimulatedFMRIDataset(FMRIDataset):
    """The demo's simulated responses to Fashion-MNIST stimuli (``simulated_fmri.npz`` written by
    ``tools/data/make_simulated_fmri.py``). Its own val split (trials of held-out training
    stimuli) is used as is; test responses are averaged over repeats by the simulator.

    ``split='unlabelled'``: ``num_unlabelled`` Fashion-MNIST training images that no simulated
    trial showed, with zero voxels and ``has_voxels`` False (the silhouette network's
    encoder-decoder term trains on them).
    """

    splits = SPLITS + ('unlabelled', )

    def __init__(self, data_root: str = '', split: str = 'train', num_unlabelled: int = 4000,
                 fashion_root: str | None = None, **kwargs):
        self.num_unlabelled, self.fashion_root = num_unlabelled, fashion_root
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_data_list(self) -> list[dict]:
        if self.split != 'unlabelled':
            return super().load_data_list()
        from .fashion_mnist import load_fashion_mnist
        from .simulated_fmri import pad_stimuli
        path = self._require(Path(self.data_root) / 'simulated_fmri.npz', 'simulated fMRI',
                             'run `make data` (tools/data/make_simulated_fmri.py)')
        data = np.load(path)
        used = np.concatenate([data['train_source_index'], data['val_source_index']])
        images, labels = load_fashion_mnist('train', self.fashion_root)
        free = np.setdiff1d(np.arange(len(images)), used)[:self.num_unlabelled]
        width = data['train_voxels'].shape[1]
        return [dict(voxels=np.zeros(width, np.float32), img=pad_stimuli(images[i:i + 1])[0],
                     gt_label=int(labels[i]), image_id=-1, has_voxels=False) for i in free]

    METAINFO = {'classes': ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                            'Shirt', 'Sneaker', 'Bag', 'Ankle boot')}

    def read_arrays(self) -> dict:
        path = self._require(Path(self.data_root) / 'simulated_fmri.npz', 'simulated fMRI',
                             'run `make data` (tools/data/make_simulated_fmri.py)')
        data = np.load(path)
        n_train, n_val = len(data['train_voxels']), len(data['val_voxels'])
        images = np.concatenate([data['train_images'], data['val_images']])
        labels = np.concatenate([data['train_labels'], data['val_labels']])
        return dict(train_voxels=np.concatenate([data['train_voxels'], data['val_voxels']]),
                    train_ids=np.arange(n_train + n_val),
                    val_image_ids=np.arange(n_train, n_train + n_val),   # the simulator's carve
                    test_voxels=data['test_voxels'], test_ids=np.arange(len(data['test_voxels'])),
                    images={'train': images, 'test': data['test_images']},
                    labels={'train': labels, 'test': data['test_labels']})



GOD_LAYOUT = ('data/Kamitani/npz/ with sbj_1.npz ... sbj_5.npz (arr_0 train trials, arr_2 '
              'test averaged, arr_3 train image index, ROI masks such as VC) and images_256.npz '
              '(train_images, test_images), as MinD-Vis releases them; see '
              'projects/cmvdm/README.md#data')


@DATASETS.register_module()
class GODDataset(FMRIDataset):
    """Generic Object Decoding (Kamitani) on MinD-Vis's npz layout.

    ``sbj_N.npz``: ``arr_0`` train trials (N, all voxels), ``arr_2`` test responses averaged
    over repeats (50, all voxels), ``arr_3`` the training image of each trial; boolean ROI
    masks under their names (``VC`` by default: subject 3 has 4,643 voxels). ``images_256.npz``:
    ``train_images`` (1200, 256, 256, 3) and ``test_images`` (50, ...). No class labels.
    """

    def __init__(self, data_root: str = 'data/Kamitani/npz', subject: str = 'sbj_3',
                 roi: str = 'VC', **kwargs):
        self.subject, self.roi = subject, roi
        super().__init__(data_root=data_root, **kwargs)

    def read_arrays(self) -> dict:
        root = Path(self.data_root)
        sub = np.load(self._require(root / f'{self.subject}.npz', f'GOD subject {self.subject}',
                                    GOD_LAYOUT))
        img = np.load(self._require(root / 'images_256.npz', 'GOD stimuli', GOD_LAYOUT))
        if self.roi not in sub.files:
            rois = [k for k in sub.files if not k.startswith('arr_')]
            raise KeyError(f'ROI {self.roi!r} is not in {root / self.subject}.npz; it has '
                           f'{rois}')
        mask = np.asarray(sub[self.roi]).astype(bool)
        test = sub['arr_2'][:, mask]
        test_images = img['test_images']
        if len(test) != len(test_images):
            raise ValueError(f'{len(test)} averaged test responses but {len(test_images)} test '
                             f'images in {root}: the files are not from one release')
        return dict(train_voxels=sub['arr_0'][:, mask], train_ids=sub['arr_3'].astype(int),
                    test_voxels=test, test_ids=np.arange(len(test)),
                    images={'train': img['train_images'], 'test': test_images})


BOLD5000_LAYOUT = ('data/BOLD5000/ with BOLD5000_GLMsingle_ROI_betas/py/<SUB>_GLMbetas-TYPED-'
                   'FITHRF-GLMDENOISE-RR_allses_<LH|RH><ROI>.npy, BOLD5000_Stimuli/'
                   'Stimuli_Presentation_Lists/<SUB>/<session>/*.txt, BOLD5000_Stimuli/'
                   'Scene_Stimuli/Presented_Stimuli/img_dict.npy and Scene_Stimuli/'
                   'repeated_stimuli_113_list.txt, as MinD-Vis releases them; see '
                   'projects/cmvdm/README.md#data')


@DATASETS.register_module()
class BOLD5000Dataset(FMRIDataset):
    """BOLD5000 GLMsingle betas of ``rois`` (both hemispheres, LH then RH per ROI) on MinD-Vis's
    layout; the 113 repeated images are the test set (responses averaged over their trials),
    every other trial trains. CSI1 has 1,685 voxels in the five ROIs."""

    def __init__(self, data_root: str = 'data/BOLD5000', subject: str = 'CSI1',
                 rois: tuple[str, ...] = ('EarlyVis', 'LOC', 'OPA', 'PPA', 'RSC'), **kwargs):
        self.subject, self.rois = subject, tuple(rois)
        super().__init__(data_root=data_root, **kwargs)

    def read_arrays(self) -> dict:
        root = Path(self.data_root)
        betas = self._require(root / 'BOLD5000_GLMsingle_ROI_betas/py', 'BOLD5000 betas',
                              BOLD5000_LAYOUT)
        files = sorted(p.name for p in betas.glob(f'{self.subject}_*.npy'))
        parts = []
        for roi in self.rois:
            found = [f for f in files if f.endswith(f'LH{roi}.npy') or f.endswith(f'RH{roi}.npy')]
            if not found:
                raise FileNotFoundError(f'no {self.subject} betas for ROI {roi} in {betas}. '
                                        f'Expected layout: {BOLD5000_LAYOUT}')
            parts += [np.load(betas / f) for f in sorted(found)]
        voxels = np.concatenate(parts, axis=-1)
        lists = self._require(root / 'BOLD5000_Stimuli/Stimuli_Presentation_Lists' /
                              self.subject, 'presentation lists', BOLD5000_LAYOUT)
        names = [str(n).removeprefix('rep_') for session in sorted(p for p in lists.iterdir()
                                                                  if p.is_dir())
                 for txt in sorted(session.glob('*.txt'))
                 for n in np.atleast_1d(np.loadtxt(txt, dtype=str))]
        if len(names) != len(voxels):
            raise ValueError(f'{len(names)} presented stimuli but {len(voxels)} trials of betas '
                             f'for {self.subject}: the files are not from one release')
        stimuli = root / 'BOLD5000_Stimuli/Scene_Stimuli'
        repeated = np.atleast_1d(np.loadtxt(self._require(
            stimuli / 'repeated_stimuli_113_list.txt', 'repeated stimuli list', BOLD5000_LAYOUT),
            dtype=str))
        # img_dict.npy is a pickled dict (the release's format): load only files you trust
        pictures = np.load(self._require(stimuli / 'Presented_Stimuli/img_dict.npy',
                                         'stimulus images', BOLD5000_LAYOUT),
                           allow_pickle=True).item()
        unique = sorted(set(names))
        index = {n: i for i, n in enumerate(unique)}
        ids = np.array([index[n] for n in names])
        test_names = [n for n in repeated if n in index]
        is_test = np.isin(ids, [index[n] for n in test_names])
        test = np.stack([voxels[ids == index[n]].mean(0) for n in test_names])
        missing = [n for n in unique if n not in pictures]
        if missing:
            raise KeyError(f'{len(missing)} presented stimuli have no image in img_dict.npy, '
                           f'e.g. {missing[:3]}: the stimulus files are not from one release')
        images = [np.asarray(pictures[n]) for n in unique]
        return dict(train_voxels=voxels[~is_test], train_ids=ids[~is_test], test_voxels=test,
                    test_ids=np.array([index[n] for n in test_names]),
                    images={'train': images, 'test': images})


def read_simulator_config(data_root: str | Path) -> dict:
    """The simulator's settings saved beside the demo data (``simulator.json``)."""
    return json.loads((Path(data_root) / 'simulator.json').read_text())
