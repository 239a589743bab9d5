# MVP-SEG with the OpenAI CLIP ViT-B/16 (the paper's backbone): frozen CLIP, MaskCLIP dense features,
# K = 3 learned prompt views of 16 tokens, OCLoss 0.1, global prompt refining; AdamW 1e-3 on the
# prompts. A dataset config sets classes, unseen classes, data and schedule.
# Weights: pretrained='openai' is fetched into open_clip's cache (needs internet once); offline,
# give the checkpoint's path instead: --cfg-options model.clip.pretrained=/path/ViT-B-16.pt
model = dict(
    type='mmext.MVPSegmentor',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323],  # CLIP's, 0-255
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(512, 512)),
    clip=dict(type='mmext.OpenCLIPModel', model_name='ViT-B-16', pretrained='openai'),
    decode_head=dict(
        type='mmext.MVPSegHead',
        in_channels=512,
        num_prompts=3,
        num_context=16,
        merge='mean',
        oc_loss=dict(type='mmext.OrthogonalConstraintLoss', loss_weight=0.1),
        gpr=dict(loss=dict(type='mmext.GlobalPromptLoss', loss_weight=1.0), threshold=0.01),
        setting='inductive',
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
