# The demo's silhouette assistant network as a model of its own (SilhouetteTrainer); the
# encoder and decoder sizes are in simulated-fmri.py, shared with stage B.
_base_ = ['./simulated-fmri.py']

model = dict(type='mmext.SilhouetteTrainer', phase='encoder',
             decoder={{_base_.silhouette_decoder}}, encoder={{_base_.silhouette_encoder}},
             data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(batch_size=64)
