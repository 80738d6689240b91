"""The layer boundary: every conv model computes the same outputs and gradients with
conv_impl "xla" and "matmul"; with the backend reported as a GPU, "auto" takes XLA's own
convolutions and every CPU-only path is off; a checkpoint crosses impls."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunsup import (
    ae_conv,
    ae_keras,
    autoencoder,
    backend,
    basics,
    checkpoint,
    dcgan,
    deep_kmeans,
    layers,
    vae,
    vgg,
)


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32))


def _vae(input_size, channels, kernel_size=3, stride=2):
    def make(impl):
        return vae.ConvVAE(input_size, channels, kernel_size, stride, 2, conv_impl=impl)

    c = channels[0]
    return make, (_x((3, input_size, input_size, c)), _x((3, 2), 1) - 0.5)


# name → (module for an impl, the inputs of its __call__)
MODELS = {
    "ae-conv": (lambda impl: ae_conv.ConvAE(conv_impl=impl), (_x((3, 28, 28, 1)),)),
    "ae-keras-cnn": (lambda impl: ae_keras.KerasCNNAE(conv_impl=impl), (_x((3, 28, 28, 1)),)),
    "dcgan-G": (lambda impl: dcgan.Generator(128, impl), (_x((3, 128)) - 0.5,)),
    "dcgan-D": (lambda impl: dcgan.Discriminator(conv_impl=impl), (_x((3, 28, 28, 1)),)),
    "vae-28x1": _vae(28, (1, 32, 64)),
    "vae-32x3": _vae(32, (3, 16, 32)),
    "vae-20x1-k4": _vae(20, (1, 8, 16, 8), kernel_size=4),
    "deep-kmeans": (lambda impl: deep_kmeans.DeepKMeans(conv_impl=impl), (_x((3, 28, 28, 1)),)),
    "vgg19": (lambda impl: vgg.VGG19(vgg.depth_for(["conv_9"]), impl), (_x((1, 24, 24, 3)),)),
}


def _params(name, make, inputs):
    if name == "vgg19":
        return jax.tree.map(jnp.asarray, vgg.truncate(vgg.init_vgg19(0), ["conv_9"]))
    return jax.jit(make("xla").init)(jax.random.key(0), *inputs)


def _outputs_and_grads(module, params, inputs):
    """Outputs, and the gradients of Σ sin(outputs) for params and inputs (a fresh trace)."""

    def loss(p, *xs):
        return sum(jnp.sum(jnp.sin(o)) for o in jax.tree.leaves(module.apply(p, *xs)))

    def f(p, xs):
        return module.apply(p, *xs), jax.grad(loss, argnums=(0, 1))(p, *xs)

    return jax.jit(f)(params, inputs)


@pytest.fixture
def platform(monkeypatch):
    def report(name):
        monkeypatch.setattr(backend, "platform", lambda: name)

    return report


@pytest.mark.parametrize("name", MODELS)
def test_impls_give_the_same_outputs_and_gradients(name, platform):
    make, inputs = MODELS[name]
    params = _params(name, make, inputs)
    shapes = {
        impl: jax.eval_shape(make(impl).init, jax.random.key(0), *inputs)
        for impl in ("xla", "matmul")
    }
    assert jax.tree.structure(shapes["xla"]) == jax.tree.structure(shapes["matmul"])
    with jax.default_matmul_precision("highest"):
        ref = _outputs_and_grads(make("matmul"), params, inputs)
        xla_cpu = _outputs_and_grads(make("xla"), params, inputs)  # CPU-only VJPs included
        platform("gpu")
        xla_plain = _outputs_and_grads(make("xla"), params, inputs)  # XLA's autodiff alone
    for other in (xla_cpu, xla_plain):
        for a, b in zip(jax.tree.leaves(other), jax.tree.leaves(ref), strict=True):
            scale = max(1.0, float(jnp.abs(b).max()))
            np.testing.assert_allclose(a, b, atol=1e-5 * scale, rtol=1e-5)


def _primitives(jaxpr) -> set[str]:
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            names |= _primitives(sub)
    return names


def _grad_primitives(make, impl, params, inputs) -> set[str]:
    module = make(impl)

    def loss(p, *xs):
        return sum(jnp.sum(o) for o in jax.tree.leaves(module.apply(p, *xs)))

    forward = jax.make_jaxpr(loss)(params, *inputs).jaxpr  # hand-written VJPs show here
    backward = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(params, *inputs).jaxpr
    return _primitives(forward) | _primitives(backward)


@pytest.mark.parametrize("name", MODELS)
def test_auto_takes_xla_convolutions_on_a_gpu_and_the_matmul_form_on_cpu(name, platform):
    make, inputs = MODELS[name]
    params = _params(name, make, inputs)
    assert "conv_general_dilated" not in _grad_primitives(make, "auto", params, inputs)
    platform("gpu")
    assert layers.resolve_impl("auto") == "xla"
    on_gpu = _grad_primitives(make, "auto", params, inputs)
    assert "conv_general_dilated" in on_gpu
    assert not any("custom_vjp" in p for p in on_gpu)  # no hand-written gradient on a GPU
    if name in ("ae-keras-cnn", "vgg19"):
        assert "reduce_window_max" in on_gpu or "select_and_scatter_add" in on_gpu


def test_cpu_only_paths_are_off_on_an_accelerator(platform):
    assert backend.on_cpu()
    assert vae.default_micro_batch(100) == vae.MICRO_BATCH < 100
    assert autoencoder.init_compiler_options() == {"xla_backend_optimization_level": 0}
    x = _x((2, 8))
    weird = basics.weird_function.__wrapped__  # unjitted: traced afresh on each backend

    def grad_primitives():  # the forward trace holds a hand-written VJP's call
        return _primitives(jax.make_jaxpr(lambda v: weird(v).sum())(x).jaxpr)

    assert any("custom_vjp" in p for p in grad_primitives())
    platform("tpu")
    assert not backend.on_cpu() and layers.resolve_impl("auto") == "xla"
    assert vae.default_micro_batch(100) == 100  # the whole batch, and evaluation in one part
    assert autoencoder.init_compiler_options() is None
    assert not any("custom_vjp" in p for p in grad_primitives())


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError, match="conv_impl='cudnn'.*'auto'"):
        layers.resolve_impl("cudnn")


@pytest.mark.parametrize("saved, restored", [("matmul", "xla"), ("xla", "matmul")])
def test_a_checkpoint_restores_and_trains_under_the_other_impl(tmp_path, saved, restored):
    x = _x((8, 28, 28, 1))
    cfg = ae_conv.ConvConfig(conv_impl=saved, lr=1e-3)
    state = ae_conv.create_state(jax.random.key(0), cfg, x)
    state, _ = ae_conv.train_step(state, x, jax.random.key(1))
    checkpoint.save(tmp_path, 1, state)
    other_cfg = ae_conv.ConvConfig(conv_impl=restored, lr=1e-3)
    target = ae_conv.create_state(jax.random.key(5), other_cfg, x)
    other, _ = checkpoint.restore(tmp_path, target)
    for a, b in zip(jax.tree.leaves(other.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    with jax.default_matmul_precision("highest"):
        after_saved, m1 = ae_conv.train_step(state, x, jax.random.key(2))
        after_other, m2 = ae_conv.train_step(other, x, jax.random.key(2))
    np.testing.assert_allclose(m1["loss"], m2["loss"], rtol=1e-5)
    for a, b in zip(
        jax.tree.leaves(after_other.params), jax.tree.leaves(after_saved.params), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)
