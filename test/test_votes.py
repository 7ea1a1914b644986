"""Vote counting on the grid equals counting the full-resolution labels, ties included."""
import pytest
import torch
import torch.nn.functional as F

from mmcert_ros.certify.l0.votes import DenseVotes, GridVotes, predict_labels
from mmcert_ros.certify.upsampling import upsample_bilinear


def brute_force_counts(logits: torch.Tensor) -> torch.Tensor:
    """Per class and pixel, how many samples' argmax (first on ties) is that class."""
    labels = logits.argmax(dim=1)
    return torch.stack([(labels == c).sum(dim=0) for c in range(logits.shape[1])]).int()


def near_tied_grid(batch, classes, grid, seed):
    """Smooth grid logits where, in a third of the cells, class 1 exactly ties class 0 or
    exceeds it by one float32 step (the cases a margin test has to get right)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(batch, classes, 3, 4, generator=generator) * 4
    logits = F.interpolate(coarse, size=grid, mode='bilinear', align_corners=False).contiguous()
    pick = torch.rand(batch, *grid, generator=generator)
    tie, step = pick < 0.17, (pick >= 0.17) & (pick < 0.34)
    logits[:, 1][tie] = logits[:, 0][tie]
    logits[:, 1][step] = torch.nextafter(logits[:, 0][step], torch.tensor(float('inf')))
    return logits


@pytest.mark.parametrize('classes', [2, 3])
@pytest.mark.parametrize('size,grid', [((37, 61), (5, 8)), ((48, 160), (6, 20)),
                                       ((24, 19), (24, 19)),  # upsampling factor 1 too
                                       # large, uneven factors: up to 4 runs per cell; one row
                                       ((41, 9), (3, 2)), ((7, 50), (1, 7))])
@pytest.mark.parametrize('compact', [True, False])
def test_grid_votes_equal_full_resolution_votes_with_forced_near_ties(classes, size, grid,
                                                                      compact):
    counter = GridVotes(classes, size, grid, torch.device('cpu'), compact=compact)
    expected = torch.zeros(classes, *size, dtype=torch.int32)
    for seed in range(3):  # several batches accumulate
        logits = near_tied_grid(5, classes, grid, seed)
        counter.add(logits)
        expected += brute_force_counts(upsample_bilinear(logits, size))
    counts = counter.counts()
    assert counts.dtype == torch.int32
    assert torch.equal(counts, expected)
    assert torch.all(counts.sum(dim=0) == 15)
    if compact:  # both ways of counting were taken: whole blocks and single pixels
        blocks, pixels = counter.blocks_and_pixels
        assert blocks > 0 and pixels > 0


def test_dense_votes_count_first_class_on_ties_in_int32():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randint(0, 3, (6, 4, 9, 11), generator=generator).float()  # many ties
    counter = DenseVotes(4, (9, 11), torch.device('cpu'))
    counter.add(logits)
    assert counter.counts().dtype == torch.int32
    assert torch.equal(counter.counts(), brute_force_counts(logits))


def test_predict_labels_dtype_is_selectable():
    logits = torch.tensor([[[1.0]], [[1.0]]])[None]  # a tie: class 0
    assert predict_labels(logits, torch.uint8).dtype == torch.uint8
    assert predict_labels(logits).item() == 0


def test_upsampling_rule_is_bilinear_with_half_pixel_centres():
    generator = torch.Generator().manual_seed(2)
    grid = torch.randn(2, 3, 5, 7, generator=generator)
    ours = upsample_bilinear(grid, (37, 54))
    torch_rule = F.interpolate(grid, size=(37, 54), mode='bilinear', align_corners=False)
    torch.testing.assert_close(ours, torch_rule, rtol=0, atol=1e-5)
