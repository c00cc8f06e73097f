"""The teacher's targets are remembered across fine-tunes, and a remembered target is the one the
teacher would have computed: same weights, same batches, bit for bit."""

import pytest
import torch

from ffnet_nas import soft_targets
from ffnet_nas.data import make_dataset
from ffnet_nas.settings import TrainConfig
from ffnet_nas.space.builder import build_model
from ffnet_nas.training import train

TINY = "stemC-basic-d1.1.1-w16.24.32-s2-upC-segC-nearest"
STEPS = 4


@pytest.fixture(autouse=True)
def memo():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    memo = soft_targets.shared()
    memo.clear()
    yield memo
    memo.max_bytes = soft_targets.DEFAULT_MAX_BYTES
    memo.enabled = True
    memo.clear()
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return make_dataset("synthetic:1", "train", size_hw=(32, 64), augment=True, num_images=16)


def _model(seed):
    torch.manual_seed(seed)
    return build_model(TINY, num_classes=8)


def _finetune(data, teacher, *, seed=0):
    model = _model(0)
    train(model, data, config=TrainConfig(steps=STEPS, batch_size=4, kd_weight=1.0, seed=seed), teacher=teacher,
          progress=False)
    return model.state_dict()


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_a_second_finetune_takes_every_target_from_the_memo_and_ends_bit_identical(data, memo):
    teacher = _model(5).eval()
    memo.max_bytes = 0  # nothing kept: every target computed, as without the memo
    computed = _finetune(data, teacher)
    assert (memo.hits, memo.misses, memo.bytes) == (0, STEPS, 0)
    memo.max_bytes = soft_targets.DEFAULT_MAX_BYTES
    first = _finetune(data, teacher)
    second = _finetune(data, teacher)
    assert (memo.hits, memo.misses) == (STEPS, 2 * STEPS)
    assert memo.bytes > 0
    assert _same(first, computed) and _same(second, computed)


def test_another_teacher_or_another_seed_is_computed_afresh(data, memo):
    teacher = _model(5).eval()
    _finetune(data, teacher)
    with torch.no_grad():
        next(teacher.parameters()).add_(0.01)  # the same module with other weights: another teacher
    _finetune(data, teacher)
    _finetune(data, teacher, seed=1)  # other batches
    assert memo.hits == 0 and memo.misses == 3 * STEPS


def test_a_full_memo_keeps_what_it_has_and_computes_the_rest(data, memo):
    teacher = _model(5).eval()
    memo.max_bytes = 0
    computed = _finetune(data, teacher)
    memo.clear()
    probe = teacher(next(iter(torch.utils.data.DataLoader(data, batch_size=4)))[0])
    memo.max_bytes = 2 * probe.numel() * probe.element_size()  # room for two batches' targets
    _finetune(data, teacher)
    again = _finetune(data, teacher)
    assert memo.bytes == memo.max_bytes
    assert memo.hits == 2 and memo.misses == 2 * STEPS - 2
    assert _same(again, computed)


def test_targets_of_a_batch_are_keyed_by_its_bytes(memo):
    calls = []

    def teacher(x):
        calls.append(1)
        return x * 2

    a = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert torch.equal(memo(teacher, a, key="t"), a * 2)
    assert torch.equal(memo(teacher, a.clone(), key="t"), a * 2)  # equal bytes, another tensor: a hit
    memo(teacher, a + 1, key="t")  # other bytes
    memo(teacher, a, key="u")  # another teacher key
    memo(teacher, a.reshape(1, 1, 3, 2), key="t")  # same bytes, another shape
    assert len(calls) == 4 and (memo.hits, memo.misses) == (1, 4)
    memo.enabled = False  # off: computed, not looked up, not counted
    memo(teacher, a, key="t")
    assert len(calls) == 5 and (memo.hits, memo.misses) == (1, 4)


def test_a_full_memo_makes_room_for_another_teacher_only(memo):
    def teacher(x):
        return x * 2

    batches = [torch.full((1, 1, 2, 2), float(i)) for i in range(3)]
    memo.max_bytes = 2 * batches[0].numel() * batches[0].element_size()
    memo(teacher, batches[0], key="old")
    memo(teacher, batches[1], key="old")
    memo(teacher, batches[2], key="old")  # full: the stream's own targets do not evict each other
    assert memo.bytes == memo.max_bytes
    memo(teacher, batches[0], key="old")
    assert memo.hits == 1
    memo(teacher, batches[2], key="new")  # full, and another teacher asks: the old one's targets go
    memo(teacher, batches[2], key="new")
    assert memo.hits == 2 and memo.bytes == batches[0].numel() * batches[0].element_size()
