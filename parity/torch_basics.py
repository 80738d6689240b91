"""Post 002's PyTorch code, restated as the post wrote it (reference for parity and benchmarks)."""

from __future__ import annotations

import torch


def weird_function(x, n_iter=5):
    """§3.2's corrupting function, verbatim but for the device: its constants are made on
    `x`'s (the post's run on the CPU)."""
    h = x
    filt = torch.tensor([-1.0 / 3, 1.0 / 3, -1.0 / 3], device=x.device)
    for i in range(n_iter):
        zero_tensor = torch.tensor([1.0 * 0], device=x.device)
        h_l = torch.cat((zero_tensor, h[:-1]), 0)
        h_r = torch.cat((h[1:], zero_tensor), 0)
        h = filt[0] * h + filt[2] * h_l + filt[1] * h_r
        if i % 2 == 0:
            h = torch.cat((h[h.shape[0] // 2 :], h[: h.shape[0] // 2]), 0)
    return h


def distance_loss(hypothesis, broken_image):
    return torch.dist(hypothesis, broken_image)


def recover_image(broken_image, random_tensor, lr=0.8, iterations=20_000):
    """§3.2's gradient-descent loop (without its prints); returns (tensor, losses)."""
    losses = []
    for _ in range(iterations):
        random_tensor.requires_grad_(True)
        hypothesis = weird_function(random_tensor)
        loss = distance_loss(hypothesis, broken_image)
        loss.backward()
        with torch.no_grad():
            random_tensor = random_tensor - lr * random_tensor.grad
        losses.append(loss.item())
    return random_tensor, losses


class NeuralNet(torch.nn.Module):
    """§3.3's classifier: Linear → ReLU → Linear(·, 1) → Sigmoid."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.linear_1 = torch.nn.Linear(self.input_size, self.hidden_size)
        self.relu = torch.nn.ReLU()
        self.linear_2 = torch.nn.Linear(self.hidden_size, 1)
        self.sigmoid = torch.nn.Sigmoid()

    def forward(self, input_tensor):
        linear1 = self.linear_1(input_tensor)
        relu = self.relu(linear1)
        linear2 = self.linear_2(relu)
        output = self.sigmoid(linear2)
        return output


def train(model, x_train, y_train, lr=0.03, epochs=2000):
    """§3.3's training loop (without its prints); returns the loss of every epoch."""
    criterion = torch.nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        train_output = model(x_train)
        train_loss = criterion(train_output.squeeze(), y_train)
        losses.append(train_loss.item())
        train_loss.backward()
        optimizer.step()
    return losses
