"""GS1-native numbers: SSCC build and check, random serial specs, the generator's properties."""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction

import pytest
from biip.gs1_messages import GS1Message
from biip.sscc import Sscc
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import ean

from central.gs1native import (
    CSET82,
    GUESS_BOUND,
    RandomSerialSpec,
    SsccSource,
    check_alphabet,
    check_serial,
    check_sscc,
    first_enabled_source,
    random_serials,
    random_spec,
    sscc_source,
    ssccs,
)
from protocol.errors import ProtocolError

alphabets = st.lists(st.sampled_from(CSET82), min_size=2, max_size=82, unique=True).map("".join)
prefixes = st.integers(6, 12).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n))


def test_cset82_is_the_gs1_set() -> None:
    assert len(CSET82) == len(set(CSET82)) == 82
    assert set(CSET82) <= {chr(c) for c in range(33, 127)}
    assert not set("#$@[\\]^`{|}~ ") & set(CSET82)


@given(prefix=prefixes, ext=st.integers(0, 9), data=st.data())
def test_sscc_is_valid_for_independent_validators(
    prefix: str, ext: int, data: st.DataObject
) -> None:
    source = SsccSource("s", prefix, ext)
    assert source.capacity == 10 ** (16 - len(prefix))
    ref = data.draw(st.integers(0, source.capacity - 1))
    code = source.build(ref)
    assert len(code) == 18 and check_sscc(code)
    parsed = Sscc.parse(code)
    assert parsed.extension_digit == ext
    assert ean.calc_check_digit(code[:-1]) == code[-1]
    assert int(code[1 + len(prefix) : -1]) == ref
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert not check_sscc(wrong)


def test_ssccs_runs_a_range_and_refuses_beyond_capacity() -> None:
    source = SsccSource("s", "400638100001", 0)  # 4 reference digits
    assert list(ssccs(source, 9_998, 2)) == [source.build(9_998), source.build(9_999)]
    with pytest.raises(ProtocolError):
        source.build(10_000)


@pytest.mark.parametrize(
    "entry",
    [
        None,
        [],
        "x",
        {"company_prefix": "12345", "extension_digit": 0},
        {"company_prefix": "1234567890123", "extension_digit": 0},
        {"company_prefix": "12345a", "extension_digit": 0},
        {"company_prefix": "١٢٣٤٥٦٧", "extension_digit": 0},
        {"company_prefix": 1234567, "extension_digit": 0},
        {"company_prefix": "1234567", "extension_digit": 10},
        {"company_prefix": "1234567", "extension_digit": True},
        {"company_prefix": "1234567", "extension_digit": "1"},
    ],
)
def test_hostile_sscc_sources(entry: object) -> None:
    with pytest.raises(ProtocolError) as exc:
        sscc_source(entry)
    assert exc.value.code == "ERR_SSCC_SOURCE"


def test_first_enabled_source() -> None:
    entries = [
        {"name": "a", "company_prefix": "1234567", "extension_digit": 1, "enabled": False},
        {"name": "b", "company_prefix": "7654321", "extension_digit": 2, "enabled": True},
    ]
    source = first_enabled_source(entries)
    assert source is not None and source.counter_key == "sscc:2:7654321"
    assert first_enabled_source(entries[:1]) is None
    assert first_enabled_source("nonsense") is None


@pytest.mark.parametrize(
    "alphabet",
    ["", "A", "AA", "AB#", "AB ", "ABé", "AB\x00", "AB\u0130", 12, None, CSET82 + "A"],
)
def test_hostile_alphabets(alphabet: object) -> None:
    with pytest.raises(ProtocolError) as exc:
        check_alphabet(alphabet)
    assert exc.value.code == "ERR_SERIAL_ALPHABET"


@pytest.mark.parametrize("length", [0, 21, -1, True, "5", 2.0, None])
def test_hostile_lengths(length: object) -> None:
    with pytest.raises(ProtocolError):
        random_spec("0123456789", length)


def test_guess_bound_per_product() -> None:
    # 10 digits x 6: 10^6 serials; a pool of n keeps n / 10^6 < 1/10,000 for n <= 99
    spec = random_spec("0123456789", 6)
    assert spec.max_pool_size == 99
    assert spec.guess_probability(99) < GUESS_BOUND <= spec.guess_probability(100)
    assert random_spec("0123456789", 6, planned=99) == spec
    with pytest.raises(ProtocolError) as exc:
        random_spec("0123456789", 6, planned=100)
    assert exc.value.code == "ERR_SERIAL_SPACE"
    with pytest.raises(ProtocolError):
        random_spec("01", 13)  # 8192 serials: not even one keeps p < 1/10,000
    big = random_spec(CSET82, 20)
    assert big.guess_probability(10**15) < Fraction(1, 10**20)


@given(alphabet=alphabets, length=st.integers(1, 20))
def test_max_pool_size_is_the_largest_safe_pool(alphabet: str, length: int) -> None:
    spec = RandomSerialSpec(alphabet, length)
    n = spec.max_pool_size
    assert spec.guess_probability(n) < GUESS_BOUND
    assert spec.guess_probability(n + 1) >= GUESS_BOUND


@settings(max_examples=60, deadline=None)
@given(alphabet=alphabets, length=st.integers(3, 20), count=st.integers(0, 300))
def test_csprng_serials_alphabet_length_uniqueness(alphabet: str, length: int, count: int) -> None:
    spec = RandomSerialSpec(alphabet, length)
    if spec.space < count * 4:
        count = spec.space // 4
    serials = random_serials(spec, count)  # the real CSPRNG
    assert len(serials) == count == len(set(serials))
    for serial in serials:
        assert check_serial(spec, serial)
        assert len(serial) == length and set(serial) <= set(alphabet)


@settings(max_examples=20, deadline=None)
@given(alphabet=alphabets, length=st.integers(1, 20))
def test_serials_are_valid_ai21(alphabet: str, length: int) -> None:
    spec = RandomSerialSpec(alphabet, length)
    for serial in random_serials(spec, min(20, spec.space // 2)):
        message = GS1Message.parse(f"010400638133393121{serial}")
        assert message.element_strings[1].value == serial


def test_uniqueness_holds_even_in_a_tiny_space() -> None:
    spec = RandomSerialSpec("AB", 4)  # 16 serials: collisions are certain, all are drawn
    assert sorted(random_serials(spec, 16)) == sorted(
        f"{a}{b}{c}{d}" for a in "AB" for b in "AB" for c in "AB" for d in "AB"
    )


@pytest.mark.parametrize("alphabet", ["0123456789", CSET82, "ABCDEFGHJKLMNPQRSTUVWXYZ234567"])
def test_character_distribution_is_uniform(alphabet: str) -> None:
    """Chi-square over 200,000 characters from a seeded RNG: deterministic, never flaky.

    The generator's mapping (rejection sampling of bytes) is what is tested; a fixed seed
    makes the statistic one number, far below the 99.9 % critical value of a uniform draw.
    """
    rng = random.Random(20261202)
    spec = RandomSerialSpec(alphabet, 20)
    serials = random_serials(spec, 10_000, randbytes=rng.randbytes)
    counts = Counter("".join(serials))
    k = len(alphabet)
    expected = 200_000 / k
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in alphabet)
    # 99.9 % critical value of chi-square with k-1 degrees of freedom: below k-1 + 5*sqrt(2(k-1))
    assert chi2 < (k - 1) + 5 * (2 * (k - 1)) ** 0.5
    # every position is uniform too (no character is favoured at the start, say)
    first = Counter(s[0] for s in serials)
    chi2_first = sum((first[c] - 10_000 / k) ** 2 / (10_000 / k) for c in alphabet)
    assert chi2_first < (k - 1) + 5 * (2 * (k - 1)) ** 0.5


def test_a_biased_mapping_would_be_caught() -> None:
    """The distribution test has teeth: byte % 10 without rejection fails it."""
    rng = random.Random(7)
    counts = Counter(b % 10 for b in rng.randbytes(200_000))
    chi2 = sum((counts[d] - 20_000) ** 2 / 20_000 for d in range(10))
    assert chi2 > 9 + 5 * 18**0.5
