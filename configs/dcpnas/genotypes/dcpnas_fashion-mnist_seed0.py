# The genotype of configs/dcpnas/dcpnas_search_fashion-mnist.py, seed 0 (2 epochs, 200 iterations,
# 15 minutes on 2 CPU cores), as benchmarks/dcpnas.py searched it: the default of the Fashion-MNIST
# retrain and detection-transfer configs.
genotype = "Genotype(normal=[('dil_conv_5x5', 0), ('sep_conv_5x5', 1), ('dil_conv_5x5', 0), ('sep_conv_5x5', 1), ('dil_conv_5x5', 1), ('dil_conv_5x5', 2), ('dil_conv_5x5', 0), ('dil_conv_5x5', 3)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('skip_connect', 1), ('skip_connect', 0), ('max_pool_3x3', 2), ('max_pool_3x3', 2), ('max_pool_3x3', 3), ('max_pool_3x3', 2), ('max_pool_3x3', 3)], reduce_concat=[2, 3, 4, 5])"
