"""The published figures of docs/reference.md, once, for every test that checks against them."""

# ImageNet models (torchvision): exact parameters and MACs of one 224x224 image.
IMAGENET = {
    "densenet121": (7_978_856, 2_834_161_664),
    "densenet169": (14_149_480, 3_359_843_328),
    "densenet201": (20_013_928, 4_291_365_888),
    "densenet161": (28_681_000, 7_727_907_072),
    "densenet264": (33_337_704, 5_751_653_376),
    "resnet18": (11_689_512, 1_814_073_344),
    "resnet34": (21_797_672, 3_663_761_408),
    "resnet50": (25_557_032, 4_089_184_256),
    "resnet101": (44_549_160, 7_801_405_440),
    "resnet152": (60_192_808, 11_513_626_624),
}

# CIFAR models (the papers' tables, 10 classes): parameters in millions and the decimals they are given to.
CIFAR_MILLIONS = {
    "densenet_40_12": (1.0, 1),
    "densenet_100_12": (7.0, 1),
    "densenet_100_24": (27.2, 1),
    "densenet_bc_100_12": (0.8, 1),
    "densenet_bc_250_24": (15.3, 1),
    "densenet_bc_190_40": (25.6, 1),
    "resnet20": (0.27, 2),
    "resnet32": (0.46, 2),
    "resnet44": (0.66, 2),
    "resnet56": (0.85, 2),
    "resnet110": (1.7, 1),
}
