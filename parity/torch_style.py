"""Post 000 §6's PyTorch style transfer, restated (the reference for `jaxunsup.style_transfer`).

`ContentLoss`, `StyleLoss`, `gram_matrix`, `Normalization`, `get_style_model_and_losses` and
`run_style_transfer` follow the post line by line; the only changes: the device is the inputs'
(the post's global `device`; the parity checks use the CPU),
`get_style_model_and_losses` takes the layer lists as arguments (defaulting to the post's),
and `run_style_transfer` records every closure call and accepts LBFGS arguments.
torchvision is not needed: `vgg19_features()` builds `torchvision.models.vgg19().features`'s
exact layer layout (same module indices, so its `state_dict` has torchvision's keys) with
torchvision's VGG init.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
       512, 512, 512, 512, "M", 512, 512, 512, 512, "M")  # fmt: skip


def vgg19_features(seed: int = 0, bias_std: float = 0.0) -> nn.Sequential:
    """`torchvision.models.vgg19().features`: same modules and indices, torchvision's init
    (Kaiming-normal fan_out weights; zero biases, or N(0, bias_std) for a stronger test)."""
    gen = torch.Generator().manual_seed(seed)
    layers, channels = [], 3
    for v in CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        conv = nn.Conv2d(channels, v, kernel_size=3, padding=1)
        with torch.no_grad():
            std = (2.0 / (v * 9)) ** 0.5  # kaiming_normal_(mode="fan_out", nonlinearity="relu")
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * std)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * bias_std)
        layers += [conv, nn.ReLU(inplace=True)]
        channels = v
    return nn.Sequential(*layers)


# ---- the post's code ----------------------------------------------------------------------


class ContentLoss(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target.detach()

    def forward(self, input):
        self.loss = F.mse_loss(input, self.target)
        return input


def gram_matrix(input):
    a, b, c, d = input.size()
    features = input.view(a * b, c * d)
    G = torch.mm(features, features.t())
    return G.div(a * b * c * d)


class StyleLoss(nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = gram_matrix(target_feature).detach()

    def forward(self, input):
        G = gram_matrix(input)
        self.loss = F.mse_loss(G, self.target)
        return input


class Normalization(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.mean = mean.view(-1, 1, 1)
        self.std = std.view(-1, 1, 1)

    def forward(self, img):
        return (img - self.mean) / self.std


def get_style_model_and_losses(
    cnn,
    style_img,
    content_img,
    content_layers=("conv_4",),
    style_layers=("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"),
):
    normalization_mean = torch.tensor([0.485, 0.456, 0.406], device=style_img.device)
    normalization_std = torch.tensor([0.229, 0.224, 0.225], device=style_img.device)
    normalization = Normalization(normalization_mean, normalization_std)
    content_losses = []
    style_losses = []
    model = nn.Sequential(normalization)
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"maxpool_{i}"
        elif isinstance(layer, nn.BatchNorm2d):
            name = f"bn_{i}"
        else:
            raise RuntimeError(f"Unrecognized layer: {layer.__class__.__name__}")
        model.add_module(name, layer)
        if name in content_layers:
            target = model(content_img)
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)
        if name in style_layers:
            target_feature = model(style_img)
            style_loss = StyleLoss(target_feature)
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], ContentLoss) or isinstance(model[i], StyleLoss):
            break
    model = model[: (i + 1)]
    return model, style_losses, content_losses


def run_style_transfer(
    cnn,
    content_img,
    style_img,
    num_steps=300,
    style_weight=100000,
    content_weight=1,
    lbfgs_kwargs=None,
    verbose=False,
):
    """The post's loop. Returns (image, records): (style, content, weighted loss) of every
    closure call, in order (the closure itself returns style + content, as the post's does)."""
    input_img = content_img.clone().detach().requires_grad_(True)
    model, style_losses, content_losses = get_style_model_and_losses(cnn, style_img, content_img)
    optimizer = optim.LBFGS([input_img], **(lbfgs_kwargs or {}))
    iteration = [0]
    records = []
    while iteration[0] <= num_steps:

        def closure():
            input_img.data.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            style_score = 0
            content_score = 0
            for sl in style_losses:
                style_score += sl.loss
            for cl in content_losses:
                content_score += cl.loss
            loss = style_weight * style_score + content_weight * content_score
            loss.backward()
            iteration[0] += 1
            if verbose and iteration[0] % 50 == 0:
                print(f"Iteration {iteration[0]}: Style Loss : {style_score.item():4f} "
                      f"Content Loss: {content_score.item():4f}")  # fmt: skip
            records.append((style_score.item(), content_score.item(), loss.item()))
            return style_score + content_score

        optimizer.step(closure)
    return input_img.data.clamp_(0, 1), records
