"""Convolutional AE (post 000 §4): shapes, parameter count, loss, training, CLI end to end."""

import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import ae_conv, cli, data, layers


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist("train", source="embedded"), data.load_mnist("test", source="embedded")


@pytest.fixture(scope="module")
def state():
    return ae_conv.create_state(jax.random.key(0), ae_conv.ConvConfig(), jnp.zeros((1, 28, 28, 1)))


class LaxConvAE(nn.Module):
    """The same network from `layers.conv`/`conv_transpose` (XLA convolutions, torch-tested)."""

    def setup(self):
        conv = functools.partial(layers.conv, impl="xla")
        conv_t = functools.partial(layers.conv_transpose, impl="xla")
        self.encoder_0 = conv(1, 16, 3, stride=2)
        self.encoder_2 = conv(16, 32, 3, stride=2)
        self.encoder_4 = conv(32, 64, 3)
        self.encoder_7 = layers.dense(1024, 10)
        self.decoder_0 = layers.dense(10, 1024)
        self.decoder_3 = conv_t(64, 32, 3)
        self.decoder_5 = conv_t(32, 16, 3, stride=2)
        self.decoder_7 = conv_t(16, 1, 3, stride=2, output_padding=1)

    def __call__(self, x):
        h = nn.relu(self.encoder_4(nn.relu(self.encoder_2(nn.relu(self.encoder_0(x))))))
        h = nn.relu(self.encoder_7(h.transpose(0, 3, 1, 2).reshape(len(x), 1024)))  # NCHW
        h = nn.relu(self.decoder_0(h)).reshape(len(x), 64, 4, 4).transpose(0, 2, 3, 1)
        h = nn.relu(self.decoder_5(nn.relu(self.decoder_3(h))))
        return nn.sigmoid(self.decoder_7(h))


def test_parameter_count_shapes_and_the_xla_reference(state, mnist):
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    # conv 1→16, 16→32, 32→64 (3×3), linear 1024→10, 10→1024, convT 64→32, 32→16, 16→1
    assert n_params == 160 + 4640 + 18496 + 10250 + 11264 + 18464 + 4624 + 145 == 68_043
    x = mnist[1].images[:4]
    y = np.asarray(jax.jit(state.apply_fn)(state.params, x))  # compiled: eager is op by op
    assert y.shape == (4, 28, 28, 1) and np.all((y > 0) & (y < 1))
    np.testing.assert_allclose(y, jax.jit(LaxConvAE().apply)(state.params, x), atol=1e-5)
    codes = ae_conv.encode(state, x)
    assert codes.shape == (4, 10) and np.all(codes >= 0)  # ReLU after Linear(1024, 10)
    np.testing.assert_allclose(ae_conv.decode(state, codes), y, atol=1e-6)


def test_loss_closed_form_with_zero_weights(state, mnist):
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    x = mnist[1].images[:4]
    loss, _ = ae_conv.loss_fn(zeros, state.apply_fn, x, None)
    np.testing.assert_allclose(
        loss, np.mean((0.5 - np.float64(x)) ** 2), rtol=1e-5
    )  # sigmoid(0) = 0.5


def test_loss_decreases_and_step_compiles_once(key, mnist, compile_counter):
    state = ae_conv.create_state(key, ae_conv.ConvConfig(), jnp.zeros((1, 28, 28, 1)))
    batch = jnp.asarray(mnist[0].images[:50])
    state, m0 = ae_conv.train_step(state, batch, key)
    with compile_counter:
        for _ in range(20):
            state, m = ae_conv.train_step(state, batch, key)
    assert compile_counter.count == 0
    assert float(m["loss"]) < 0.7 * float(m0["loss"])


def test_cli_end_to_end_and_restore(tmp_path, capsys):
    args = ["--source", "embedded", "--n-train", "500", "--n-test", "100", "--epochs", "2"]
    assert cli.main(["run", "ae-conv", "--workdir", str(tmp_path), *args]) == 0
    assert "test MSE" in capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["train_loss"]) == 2 and results["n_train"] == 500
    assert results["train_loss"][1] < results["train_loss"][0]
    for name in ("config.json", "metrics.jsonl", *results["figures"]):
        assert (tmp_path / name).stat().st_size > 0
    state, cfg = ae_conv.restore(tmp_path)
    assert cfg.epochs == 2 and cfg.n_test == 100
    test = data.load_mnist("test", source="embedded").images[:100]
    _, mse = ae_conv.reconstruct(state, test)
    np.testing.assert_allclose(mse.mean(), results["test_mse"], rtol=1e-5)
    assert 0 < results["clustering"]["latent"]["acc"] <= 1


@pytest.mark.parametrize(
    "kw, match",
    [({"lr": -1.0}, "lr"), ({"batch_size": 0}, "batch_size"), ({"channels": 0}, "channels"),
     ({"n_train": 0}, "n_train")],
)  # fmt: skip
def test_bad_config_is_rejected_before_training(tmp_path, mnist, kw, match):
    with pytest.raises(ValueError, match=match):
        ae_conv.run(ae_conv.ConvConfig(**kw), tmp_path, data=mnist)


def test_bad_images_are_rejected(tmp_path, mnist):
    train, test = mnist
    nan = train._replace(images=np.where(train.images > 0.5, np.nan, train.images))
    with pytest.raises(ValueError, match="NaN"):
        ae_conv.run(ae_conv.ConvConfig(), tmp_path, data=(nan, test))
    rgb = test._replace(images=np.repeat(test.images, 3, axis=-1))
    with pytest.raises(ValueError, match="test images"):
        ae_conv.run(ae_conv.ConvConfig(), tmp_path, data=(train, rgb))
