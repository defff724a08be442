"""Index type selection by collection size and memory budget (autofaiss-style)."""

import faiss
import pytest

from teran_core.index.factory import choose_index, ivf_lists

GiB = 2**30


@pytest.mark.parametrize(("n", "budget", "expected"), [
    (1_000_000, GiB, "Flat"),  # at the flat limit: exact
    (1_000_001, 2 * GiB, "IVF4096,Flat"),  # just above: no HNSW by default
    (900_000, 200 * 2**20, "OPQ32_64,IVF4096,PQ32"),  # below flat_max, but the raw vectors do not fit: compressed
    (3_600_000, GiB, "IVF8192,Flat"),
    (20_000_000, GiB, "OPQ32_64,IVF16384_HNSW32,PQ32"),  # raw 5 GiB: compressed, HNSW coarse quantizer
    (20_000_000, GiB // 2, "OPQ16_64,IVF16384_HNSW32,PQ16"),  # half the budget: half the code size
])
def test_choice_follows_size_and_budget(n, budget, expected):
    choice = choose_index(n, 64, budget)
    assert choice.factory == expected
    assert choice.estimated_bytes <= budget
    faiss.index_factory(64, choice.factory, faiss.METRIC_INNER_PRODUCT)  # a string FAISS accepts


def test_ivf_choices_train_on_enough_points_and_probe_a_few_lists():
    choice = choose_index(3_600_000, 64, GiB)
    assert choice.is_ivf and choice.nprobe == 128 and choice.train_points == 64 * 8192
    compressed = choose_index(20_000_000, 64, GiB)
    assert compressed.train_points >= 256 * 39


def test_hnsw_only_when_asked_for_and_it_fits():
    assert choose_index(100_001, 64, GiB, flat_max=100_000, hnsw_max=1_000_000).factory == "HNSW32"
    assert choose_index(900_000, 64, 300 * 2**20, flat_max=100_000, hnsw_max=1_000_000).factory == "IVF4096,Flat"


def test_small_collections_over_budget_are_not_flat():
    assert choose_index(50_000, 64, 1 * 2**20).factory.startswith("OPQ")


def test_override_keeps_the_string_and_derives_search_parameters():
    choice = choose_index(1_000_000, 64, GiB, factory="IVF1024,PQ16")
    assert (choice.factory, choice.nprobe, choice.reason) == ("IVF1024,PQ16", 16, "index.factory override")
    assert choose_index(10, 64, GiB, factory="HNSW16").ef_search == 128


def test_budget_too_small_says_what_is_needed():
    with pytest.raises(ValueError, match="raise index.memory_budget_gb"):
        choose_index(10**9, 64, GiB)


def test_ivf_lists_keeps_39_points_per_list():
    assert ivf_lists(10_000) * 39 <= 10_000
    assert ivf_lists(10**6) == 4096
