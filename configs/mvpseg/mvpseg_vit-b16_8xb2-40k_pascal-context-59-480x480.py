# MVP-SEG, Pascal Context-59, 49 seen / 10 unseen classes (ZS3Net's 10-class split: cow,
# motorbike, sofa, cat, boat, fence, bird, tvmonitor, keyboard, aeroplane; not checked against
# MVP-SEG, which published no split), inductive.
_base_ = [
    'mmseg::_base_/datasets/pascal_context_59.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/mvpseg_vit-b16.py',
    './_base_/mvpseg_schedule.py',
]
custom_imports = dict(imports=['mmext', 'projects.mvpseg'], allow_failed_imports=False)

unseen = ['cow', 'motorbike', 'sofa', 'cat', 'boat', 'fence', 'bird', 'tvmonitor', 'keyboard',
          'aeroplane']
class_texts = {'pottedplant': 'potted plant', 'tvmonitor': 'tv monitor',
               'bedclothes': 'bed clothes'}

model = dict(data_preprocessor=dict(size=(480, 480)),
             decode_head=dict(class_names='PascalContextDataset59', unseen_classes=unseen,
                              class_texts=class_texts),
             test_cfg=dict(crop_size=(480, 480), stride=(320, 320)))
train_dataloader = dict(batch_size=2)
val_evaluator = dict(_delete_=True, type='mmext.OpenVocabIoUMetric', unseen_classes=unseen,
                     setting='inductive')
test_evaluator = val_evaluator

param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=40000,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=8000)
