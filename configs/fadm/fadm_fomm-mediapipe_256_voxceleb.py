# FADM on FOMM with MediaPipe's 9 attributes (head pose and 6 expression coefficients from its
# face mesh, projects/fadm/attributes.py) in place of DECA's 56: for users without DECA's
# deca_model.tar. Everything else as fadm_fomm_256_voxceleb.py.
#   python tools/data/cache_face_attributes.py data/vox-png data/vox-png/attributes.npz --mirrored
#   python tools/train.py configs/fadm/fadm_fomm-mediapipe_256_voxceleb.py
_base_ = './fadm_fomm_256_voxceleb.py'

attributes = dict(attributes_file='data/vox-png/attributes.npz', num_attributes=9)
model = dict(agcn=dict(num_attributes=9))
train_dataloader = dict(dataset=attributes)
test_dataloader = dict(dataset=attributes)
