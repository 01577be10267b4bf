"""The models and what describes them: configs and presets, the layer plan (all channel and size
arithmetic), DenseNet, its memory-efficient layer, the ResNet baselines, building on a device."""
