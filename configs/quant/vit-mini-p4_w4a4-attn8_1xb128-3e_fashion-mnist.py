# The miniature ViT of the Bi-ViT ablation (vit-mini-p4_1xb128-10e_fashion-mnist.py) at W-A-Attn
# 4-4-8 by the module swap: LSQ weights per output channel, LSQ+ inputs per input channel,
# per-head LSQ+ on q, k, v and P; the patch embedding and the classifier stay float. Steps are
# calibrated on the float checkpoint (inputs: MSE over 16 training batches; weights: 99.99th
# percentile per channel) before QAT, or before testing:
#   python tools/test.py configs/quant/vit-mini-p4_w4a4-attn8_1xb128-3e_fashion-mnist.py FLOAT.pth  (PTQ)
#   python tools/train.py configs/quant/vit-mini-p4_w4a4-attn8_1xb128-3e_fashion-mnist.py          (QAT)
# benchmarks/ptq_qat.py measures both (benchmarks/results/ptq_qat.md).
_base_ = '../bivit/vit-mini-p4_1xb128-10e_fashion-mnist.py'
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='mmext.QuantizedModel',
    model={{_base_.model}},
    quant=dict(
        type='mmext.ModuleSwap',
        w_bits=4,
        a_bits=4,
        attn_bits=8,
        a_granularity='channel',
        calibration=dict(method='mse', weight_method='percentile', batches=16),
        skip=['backbone.patch_embed.projection', 'head.*']))
custom_hooks = [dict(type='mmext.QuantCalibrationHook')]
load_from = 'work_dirs/vit-mini-p4_1xb128-10e_fashion-mnist/epoch_10.pth'

# QAT: 3 epochs from the float model, AdamW at a tenth of the float learning rate, cosine.
max_epochs = 3
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-6,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=1e-4))
train_cfg = dict(max_epochs=max_epochs)
