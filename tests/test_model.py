import torch

from sparse_rcnn.data.resize import rescale_size
from sparse_rcnn.models import build_model
from tiny import tiny_model_config


def _images():
    g = torch.Generator().manual_seed(1)
    return [
        torch.randint(0, 256, (3, 96, 128), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (3, 120, 80), generator=g, dtype=torch.uint8),
    ]


def test_training_returns_weighted_losses_and_gradients():
    model = build_model(tiny_model_config()).train()
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    losses = model(_images(), targets)
    assert len(losses) == 3 * 2 and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.proposal_boxes.weight.grad is not None and model.proposal_features.weight.grad is not None
    assert model.backbone.body.conv1.weight.grad is None  # stem frozen
    assert model.backbone.body.layer1[0].conv1.weight.grad is None  # layer1 frozen
    assert model.backbone.body.layer2[0].conv1.weight.grad is not None
    assert not model.backbone.body.bn1.training  # BN statistics stay frozen in training


def test_inference_contract_and_original_pixels():
    model = build_model(tiny_model_config()).eval()
    with torch.no_grad():
        out = model(_images())
    assert len(out) == 2
    for o in out:
        assert o["boxes"].shape == (8, 4) and o["scores"].shape == (8,)  # k = num_proposals
        assert torch.all(o["scores"][:-1] >= o["scores"][1:])
        assert o["labels"].dtype == torch.int64 and o["labels"].max() < 3
    # proposals start as the whole unpadded resized image: 128x96 -> 160x120 for test_scale (160, 128)
    new_w, new_h = rescale_size(128, 96, (160, 128))
    boxes, _ = model.initial_proposals(torch.tensor([[new_h, new_w]]))
    assert (new_w, new_h) == (160, 120)
    assert torch.allclose(boxes[0, 0], torch.tensor([0.0, 0.0, 160.0, 120.0]))


def test_batched_equals_single_up_to_padding():
    """Batching pads every image to the batch's padded size; that padding is the only difference.

    Running one image alone but zero-padded to the batch size reproduces its batched result exactly,
    while running it alone with its own (smaller) padding may differ slightly near the borders."""
    model = build_model(tiny_model_config()).eval()
    images = _images()
    with torch.no_grad():
        batch, sizes = model.batcher(images)
        boxes, scores, labels = model.detect(batch, sizes)
        for i in range(2):
            b1, s1, l1 = model.detect(batch[i : i + 1], sizes[i : i + 1])
            assert torch.allclose(s1[0], scores[i], atol=1e-5) and torch.allclose(b1[0], boxes[i], atol=1e-3)
            assert torch.equal(l1[0], labels[i])
        # same-size images: batch == single exactly (no extra padding at all)
        same = [images[0], images[0].flip(-1)]
        both = model(same)
        alone = model([same[1]])
        assert torch.allclose(both[1]["scores"], alone[0]["scores"], atol=1e-5)
