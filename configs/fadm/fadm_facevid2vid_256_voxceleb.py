# FADM on face-vid2vid (production): as fadm_fomm_256_voxceleb.py with face-vid2vid as the frozen
# coarse animator in training and test (spec 11.6: the same animator in both). Its weights: the
# public re-implementation's vox-256-spade checkpoint (NVIDIA released none), read through
# projects/fadm/convert.py (kp_detector, he_estimator and SPADE generator state dicts).
#   python tools/data/cache_face_attributes.py data/vox-png data/vox-png/attributes_deca.npz \
#       --extractor deca --deca-checkpoint checkpoints/deca/deca_model.tar --mirrored
#   python tools/train.py configs/fadm/fadm_facevid2vid_256_voxceleb.py
#   python tools/test.py configs/fadm/fadm_facevid2vid_256_voxceleb.py work_dirs/.../epoch_100.pth
_base_ = './fadm_fomm_256_voxceleb.py'

model = dict(animator=dict(_delete_=True, type='mmext.FaceVid2VidAnimator',
                           checkpoint='checkpoints/facevid2vid/00000189-checkpoint.pth.tar'))
