"""UNet 3+ and DeepLabV3 (``model.name``): parameter counts against the papers and torchvision,
fields that do not apply refused, torchvision weights converted and loaded, deep supervision's
loss worked out by hand, a cohort equal to its runs one by one, export -> predict on cmr96."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import shared_dir
from test_train import assert_same_metrics, history, tiny_config

from jaxseg import configs, losses, model_io, predict, train, validation, workdir
from jaxseg.engine import steps
from jaxseg.errors import JaxsegError
from jaxseg.models import DeepLabV3, UNet3Plus, create_model, pretrained

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def shapes(model, size=96, channels=1):
    return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, channels)))


def test_parameter_counts():
    # The study's UNet 3+ (the U-Net's encoder, 16 channels per scale): 516,532 + the three
    # deep-supervision heads, 3x3 convolutions of 64 (decoder stages 1, 2) and 64 (the
    # bottleneck) channels to 4 logits: 3 * (9 * 64 * 4 + 4) = 9,228.
    plain = UNet3Plus(depth=3, base_width=16, cat_width=16, deep_supervision=False)
    assert count(shapes(plain)["params"]) == 516532
    assert count(shapes(plain.clone(deep_supervision=True))["params"]) == 516532 + 9228
    # The paper's network (5 scales of 64...1024, 320-channel decoder, RGB in, one logit):
    # its Table 1 gives 26.97M.
    paper = UNet3Plus(head="sigmoid", num_classes=2, deep_supervision=False)
    assert count(shapes(paper, 64, 3)["params"]) == 26971777
    # DeepLabV3: the backbone is torchvision's resnet18 without its classifier (11,176,512
    # parameters with RGB input) less 7*7*64*2 weights of the 1-channel first convolution.
    net = shapes(DeepLabV3())
    assert count(net["params"]["backbone"]) == 11176512 - 7 * 7 * 64 * 2
    assert count(net["params"]) == 15303108
    # Independent of the input size and of the output stride (dilation has no weights).
    assert count(shapes(DeepLabV3(output_stride=8), 64)["params"]) == 15303108
    assert count(shapes(plain, 32)["params"]) == 516532


def test_planner_flops_of_the_study_networks():
    # The training FLOPs the planner counts for experiments/architectures.py's networks,
    # relative to its U-Net (docs/design.md §9 quotes them): the U-Net's are counted per
    # convolution by hand, the others' from XLA's cost analysis of the lowered forward pass.
    from experiments import architectures
    from jaxseg import hparams
    from jaxseg.sweep import plan

    base = architectures.get_config(None)
    flops = {name: plan.estimate(hparams.apply_overrides(base, fields))[2]
             for name, fields in architectures.ARCHITECTURES.items()}
    assert flops["unet"] == pytest.approx(29.68e9, rel=1e-3)  # batch 16, 96x96, base 16
    assert flops["unet3plus"] / flops["unet"] == pytest.approx(3.61, abs=0.01)
    assert flops["deeplabv3"] / flops["unet"] == pytest.approx(1.61, abs=0.01)
    # Output stride 8 with the study's rates doubled, as the paper doubles them.
    stride8 = hparams.apply_overrides(base, {**architectures.ARCHITECTURES["deeplabv3"],
                                             "model.output_stride": 8,
                                             "model.aspp_rates": (2, 4, 6)})
    assert plan.estimate(stride8)[2] / flops["unet"] == pytest.approx(4.90, abs=0.01)


def test_outputs_in_training_and_evaluation():
    model = UNet3Plus(depth=2, base_width=4, cat_width=4)
    x = jnp.zeros((2, 32, 32, 1))
    v = jax.jit(model.init, compiler_options={"xla_backend_optimization_level": 0})(
        jax.random.key(0), x)
    (logits, sides), _ = model.apply(v, x, train=True, mutable=["batch_stats"])
    assert logits.shape == (2, 32, 32, 4) and [s.shape for s in sides] == [(2, 32, 32, 4)] * 2
    assert model.apply(v, x).shape == (2, 32, 32, 4)  # evaluation: the main output only
    lab = DeepLabV3(num_classes=2, head="sigmoid", aspp_rates=(1, 2, 3), aspp_width=8)
    out, v = lab.init_with_output(jax.random.key(0), jnp.zeros((1, 40, 24, 1)))
    assert out.shape == (1, 40, 24, 1)  # up-sampled to the input, any size
    # bfloat16 computation (model.dtype) on the same float32 weights: float32 logits, close.
    x = jax.random.uniform(jax.random.key(1), (1, 40, 24, 1))
    ref, low = lab.apply(v, x), lab.clone(dtype=jnp.bfloat16).apply(v, x)
    assert low.dtype == jnp.float32
    assert float(jnp.abs(low - ref).max()) < 0.05 * float(jnp.abs(ref).max())


def test_fields_that_do_not_apply_are_refused():
    c = configs.default()
    c.model.name, c.model.depth = "deeplabv3", 4
    with pytest.raises(JaxsegError, match="model.depth=4 does not apply to "
                                          "model.name='deeplabv3'.*unet and unet3plus"):
        validation.validate(c)
    c = configs.default()
    c.model.cat_width = 32
    with pytest.raises(JaxsegError, match="model.cat_width=32 does not apply to "
                                          "model.name='unet'.*unet3plus"):
        validation.validate(c)
    c = configs.default()
    c.model.name = "unet3plus"
    c.model.upsample = "bilinear"
    with pytest.raises(JaxsegError, match="model.upsample='bilinear' does not apply"):
        validation.validate(c)
    c = configs.default()
    c.model.name = "deeplabv3"
    validation.validate(c, [{"model.dropout.decoder": 0.1}])  # after the ASPP projection
    with pytest.raises(JaxsegError, match="model.dropout.encoder does not apply to "
                                          "model.name='deeplabv3'.*'decoder'"):
        validation.validate(c, [{}, {"model.dropout.encoder": 0.2}])
    for field, value, message in (("norm", "instance", "model.norm='instance' does not apply"),
                                  ("aspp_rates", (1, 2), "three atrous rates"),
                                  ("output_stride", 32, "unknown model.output_stride"),
                                  ("pretrained", "/no/such.npz", "no such file")):
        c = configs.default()
        c.model.name = "deeplabv3"
        c.model[field] = value
        with pytest.raises(JaxsegError, match=message):
            create_model(c.model, 4)
    # Result tables show "-" where a run's network does not read a swept field.
    from jaxseg.models import reads

    c = configs.default()
    c.model.name = "deeplabv3"
    assert not reads(c.model, "model.depth") and reads(c.model, "model.aspp_rates")
    assert reads(c.model, "model.dropout.decoder") and reads(c.model, "optim.learning_rate")
    c.model.name = "unet3plus"
    assert reads(c.model, "model.depth") and not reads(c.model, "model.upsample")
    c.model.name = "segformer"
    with pytest.raises(JaxsegError, match="unknown model.name 'segformer'"):
        validation.validate(c)


def torchvision_state(rng, rgb=3):
    """A state dict with the names and shapes of torchvision's resnet18 (random values)."""
    state = {"conv1.weight": rng.normal(size=(64, rgb, 7, 7)), "fc.weight": np.zeros((1000, 512)),
             "fc.bias": np.zeros(1000)}

    def bn(prefix, c):
        state.update({f"{prefix}.weight": rng.uniform(0.5, 1.5, c),
                      f"{prefix}.bias": rng.normal(size=c),
                      f"{prefix}.running_mean": rng.normal(size=c),
                      f"{prefix}.running_var": rng.uniform(0.5, 2, c),
                      f"{prefix}.num_batches_tracked": np.array(7)})

    bn("bn1", 64)
    cin = 64
    for stage, c in enumerate((64, 128, 256, 512), 1):
        for b in range(2):
            p = f"layer{stage}.{b}"
            state[f"{p}.conv1.weight"] = rng.normal(size=(c, cin if b == 0 else c, 3, 3))
            state[f"{p}.conv2.weight"] = rng.normal(size=(c, c, 3, 3))
            bn(f"{p}.bn1", c)
            bn(f"{p}.bn2", c)
            if b == 0 and stage > 1:
                state[f"{p}.downsample.0.weight"] = rng.normal(size=(c, cin, 1, 1))
                bn(f"{p}.downsample.1", c)
        cin = c
    return state


def stacked_init(model, replicas=2, size=32):
    init = jax.jit(jax.vmap(lambda k: model.init(k, jnp.zeros((1, size, size, 1)))),
                   compiler_options={"xla_backend_optimization_level": 0})
    return init(jax.random.split(jax.random.key(0), replicas))


def test_torchvision_weights_convert_and_load(tmp_path):
    state = torchvision_state(np.random.default_rng(0))
    path = str(tmp_path / "resnet18.npz")
    from safetensors.numpy import save_file

    save_file({k: np.asarray(v, np.float32) for k, v in state.items()},
              str(tmp_path / "resnet18.safetensors"))
    # 20 convolutions and 20 batch norms (4 arrays each); fc and the counters left out.
    assert pretrained.convert_file(str(tmp_path / "resnet18.safetensors"), path) == 100
    model = DeepLabV3(aspp_width=8, aspp_rates=(1, 2, 3))
    v = stacked_init(model)
    loaded = pretrained.load_into(v, pretrained.load(path), path)
    p, s = loaded["params"]["backbone"], loaded["batch_stats"]["backbone"]
    for r in range(2):  # every replica starts from the file's backbone
        np.testing.assert_allclose(p["layer2_0"]["downsample_conv"]["kernel"][r],
                                   state["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0),
                                   rtol=1e-6)
        np.testing.assert_allclose(p["layer4_1"]["conv2"]["kernel"][r, 1, 2, 5, 7],
                                   state["layer4.1.conv2.weight"][7, 5, 1, 2], rtol=1e-6)
        np.testing.assert_allclose(s["layer3_1"]["bn2"]["var"][r],
                                   state["layer3.1.bn2.running_var"], rtol=1e-6)
        np.testing.assert_allclose(p["bn1"]["scale"][r], state["bn1.weight"], rtol=1e-6)
        # RGB summed into the grey input channel.
        np.testing.assert_allclose(p["conv1"]["kernel"][r, :, :, 0],
                                   state["conv1.weight"].sum(1).transpose(1, 2, 0), atol=1e-6)
    # The ASPP head is not in the file: each replica keeps its own seed's draw.
    head = loaded["params"]["classifier"]["kernel"]
    np.testing.assert_array_equal(head, v["params"]["classifier"]["kernel"])
    assert not np.allclose(head[0], head[1])
    # A file that does not match says what differs.
    weights = pretrained.load(path)
    del weights["params/backbone/layer1_0/conv2/kernel"]
    with pytest.raises(JaxsegError, match=r"does not match.*missing \['params/backbone/"
                                          r"layer1_0/conv2/kernel'\]"):
        pretrained.load_into(v, weights, path)
    weights = pretrained.load(path)
    weights["params/backbone/layer1_0/conv2/kernel"] = np.zeros((3, 3, 64, 32), np.float32)
    with pytest.raises(JaxsegError, match=r"layer1_0/conv2/kernel has shape \(3, 3, 64, 32\)"):
        pretrained.load_into(v, weights, path)
    with pytest.raises(JaxsegError, match="'layer5.0.conv1.weight'.*not a parameter"):
        pretrained.convert_torchvision({"layer5.0.conv1.weight": np.zeros((1, 1, 1))})
    (tmp_path / "bad.npz").write_text("not an npz")
    with pytest.raises(JaxsegError, match="is not an .npz"):
        pretrained.load(str(tmp_path / "bad.npz"))


def test_converted_torchvision_resnet_computes_what_torchvision_does(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from jaxseg.models.resnet import ResNet18

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():  # statistics other than 0/1, so batch norm's mapping is checked
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    path = str(tmp_path / "resnet18.npz")
    pretrained.convert_file(str(tmp_path / "resnet18.pth"), path)
    grey = np.random.default_rng(0).normal(size=(2, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():  # the grey image as RGB, through everything but pooling and fc
        ref = torch.nn.Sequential(*list(net.children())[:-2])(
            torch.from_numpy(np.repeat(grey, 3, 1))).numpy().transpose(0, 2, 3, 1)
    model = ResNet18(output_stride=32)
    v = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 1)))
    v = pretrained.load_into({c: {"backbone": v[c]} for c in v}, pretrained.load(path), path,
                             replica_axis=False)
    out = model.apply({c: v[c]["backbone"] for c in v}, grey.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max())


def test_deep_supervision_loss_is_the_weighted_mean_of_the_outputs_losses():
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.integers(0, 4, (2, 8, 8)))
    outs = [jnp.asarray(rng.normal(size=(2, 8, 8, 4)), jnp.float32) for _ in range(4)]
    weights, params = {"ce": 1.0, "dice": 1.0}, {"smooth": 1.0}
    static = steps.Static(model=None, tx=None, plateau=None, terms=("ce", "dice"),
                          head="softmax", num_classes=4, class_counts=None, augment=None,
                          dropout=(False,) * 3, tolerance=0.0, num_volumes=0, side_weight=0.5)
    one = [float(losses.total_loss(o, y, weights, params, head="softmax", num_classes=4,
                                   class_counts=None)[0]) for o in outs]
    got = steps.output_loss(static, (outs[0], tuple(outs[1:])), y, weights, params)
    assert float(got) == pytest.approx((one[0] + 0.5 * sum(one[1:])) / (1 + 0.5 * 3), rel=1e-6)
    assert float(steps.output_loss(static, outs[0], y, weights, params)) == \
        pytest.approx(one[0], rel=1e-6)


def arch_config(tfds_dir, name):
    c = tiny_config(tfds_dir, epochs=2)
    c.model.name = name
    if name == "unet3plus":
        c.model.cat_width, c.model.side_weight = 4, 0.5
    else:
        c.model.depth, c.model.base_width = 3, 16  # the defaults: DeepLabV3 reads neither
        c.model.aspp_rates, c.model.aspp_width = (1, 2, 3), 16
    return c


@pytest.mark.parametrize("name", ["unet3plus", "deeplabv3"])
def test_cohort_equals_runs_one_by_one(name, tfds_dir, tmp_path):
    # DeepLabV3 at small learning rates: at 3e-3, 3 Adam steps of its 15M parameters and
    # batch norm's running statistics after them amplify float rounding (the vmapped and
    # the lone programs sum in other orders) into validation losses 4-30% apart; at 1e-5
    # the two agree to 1e-5.
    lr = 3e-3 if name == "unet3plus" else 1e-5
    replicas = [{"optim.learning_rate": lr}, {"optim.learning_rate": lr / 3, "seed": 1}]
    singles = []
    for i, o in enumerate(replicas):
        c = arch_config(tfds_dir, name)
        train.train_and_evaluate(c, str(tmp_path / f"single{i}"), [o])
        singles.append(history(str(tmp_path / f"single{i}")))
    c = arch_config(tfds_dir, name)
    c.train.strategy = "vmap"  # every replica in one program, against the lone programs
    train.train_and_evaluate(c, str(tmp_path / "cohort"), replicas)
    h = history(str(tmp_path / "cohort"))
    for r in range(2):
        for epoch in (1, 2):
            assert_same_metrics(h[(r, epoch)], singles[r][(0, epoch)])
    assert h[(0, 2)]["train_loss"] != h[(1, 2)]["train_loss"]


@pytest.fixture(scope="module")
def cmr96_sweep(tmp_path_factory, tfds_dir, xla_cache):
    """experiments/architectures.py:smoke on cmr96: one run per architecture, 1 epoch."""
    cmr96 = shared_dir("cmr96")
    wd = str(tmp_path_factory.mktemp("arch_sweep"))
    out = subprocess.run(
        [sys.executable, "-m", "jaxseg.main", "sweep",
         f"--config={ROOT}/experiments/architectures.py:smoke", f"--workdir={wd}",
         "--config.data.name=cmr96", f"--config.data.source_dir={cmr96}",
         "--config.data.image_size=96", "--config.train.epochs=1",
         f"--config.data.tfds_dir={tfds_dir}", f"--compilation_cache={xla_cache}"],
        cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(wd, "results.json")) as f:
        return wd, cmr96, {r["label"]: r for r in json.load(f)["runs"]}


@pytest.mark.parametrize("name", ["unet3plus", "deeplabv3"])
def test_export_and_predict_reproduce_the_sweeps_evaluation(name, cmr96_sweep, tmp_path):
    wd, cmr96, runs = cmr96_sweep
    run = runs[name]
    rep = workdir.Workdir(wd).replica(str(run["run"]))
    model = model_io.from_export(model_io.export(model_io.from_replica(rep),
                                                 str(tmp_path / "model")))
    assert model.config.model.name == name
    res = predict.run_predict(model, f"{cmr96}/val/image", str(tmp_path / "pred"),
                              masks=f"{cmr96}/val/mask")
    for key in ("dice", "iou", "bf", "accuracy"):
        assert res["metrics"][key] == pytest.approx(run[key], rel=1e-9), key


def test_inspect_and_report_read_every_architecture(cmr96_sweep, tmp_path):
    wd, _, runs = cmr96_sweep
    out = subprocess.run([sys.executable, "-m", "jaxseg.main", "inspect", f"--workdir={wd}",
                          f"--replica={runs['deeplabv3']['run']}"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Total:" in out.stdout and "backbone" in out.stdout  # clu's parameter overview
    from jaxseg import report

    folder = report.build(wd, str(tmp_path / "report"))
    text = open(os.path.join(folder, "report.md")).read()
    assert all(name in text for name in ("unet3plus", "deeplabv3"))
