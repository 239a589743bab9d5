# The genotype of DCP-NAS's released ImageNet retraining: the authors' public code names it
# DDPNAS_MCN_2 and retrains it with 108 initial channels and 10 cells, in two steps of 256
# epochs (configs/dcpnas/dcpnas-released-retrain-step{1,2}_8xb64-256e_in1k.py). The release
# does not say which of the paper's model sizes (DCP-NAS-S / M / L) it is.
# Node i (2..5) takes the two (operation, input) pairs listed for it, in order; inputs 0 and 1
# are the two previous cells; both cells concatenate nodes 2 to 5.
#   normal  node 2: sep_conv_5x5 <- 1, max_pool_3x3 <- 0   reduce  node 2: max_pool_3x3 <- 0, sep_conv_3x3 <- 1
#           node 3: dil_conv_3x3 <- 2, skip_connect <- 0           node 3: dil_conv_3x3 <- 1, sep_conv_3x3 <- 0
#           node 4: sep_conv_3x3 <- 3, avg_pool_3x3 <- 1           node 4: max_pool_3x3 <- 1, dil_conv_5x5 <- 2
#           node 5: dil_conv_3x3 <- 4, avg_pool_3x3 <- 3           node 5: dil_conv_5x5 <- 2, sep_conv_5x5 <- 1
genotype = "Genotype(normal=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('dil_conv_3x3', 2), ('skip_connect', 0), ('sep_conv_3x3', 3), ('avg_pool_3x3', 1), ('dil_conv_3x3', 4), ('avg_pool_3x3', 3)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 1), ('sep_conv_3x3', 0), ('max_pool_3x3', 1), ('dil_conv_5x5', 2), ('dil_conv_5x5', 2), ('sep_conv_5x5', 1)], reduce_concat=[2, 3, 4, 5])"
