"""The creation rules of docs/formats.md#preparation-sizes that need no database, in their order, with their messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataset_worker.prep.create import (
    LARGEST_DERIVED_MAX_SIZE,
    MAX_NAME_LENGTH,
    SizeLimits,
    relative_folder_problems,
    resolve_folders,
    validate_name,
    validate_sizes,
)
from dataset_worker.prep.errors import InvalidParameter
from dataset_worker.prep.views import CreatePreparationRequest
from dataset_worker.sizes import parse_size

GIB, MIB = 1 << 30, 1 << 20


@pytest.mark.parametrize(
    "name", ["demo", "a", "2024-photos", "x1", "a.b_c-D", "1.5", "_x", "x" * MAX_NAME_LENGTH]
)
def test_valid_names_pass(name: str) -> None:
    validate_name(name)


RULE = r'a name is 1 to 64 characters from A-Z, a-z, 0-9, "\.", "_" and "-", not starting'


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "^name must not be empty: " + RULE),
        ("   ", "^name contains ' ', which is not allowed: " + RULE),
        ("a b", "^name contains ' ', which is not allowed"),
        ("ünïcødé", "^name contains 'é', 'ï', 'ø', 'ü', which is not allowed"),
        ("a/b", "^name contains '/', which is not allowed"),
        ("x[bold]", r"^name contains '\[', '\]', which is not allowed"),
        ("esc\x1b[31m", r"^name contains '\\x1b', '\[', which is not allowed"),
        (".hidden", '^name ".hidden" must not start with "."'),
        ("123", '^name "123" must not be all digits'),
        ("0", '^name "0" must not be all digits'),
        ("x" * (MAX_NAME_LENGTH + 1), f"^name must be at most {MAX_NAME_LENGTH} characters"),
    ],
)
def test_bad_names_are_refused_naming_the_field_and_the_rule(name: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message) as raised:
        validate_name(name)
    assert "\x1b" not in str(raised.value)  # control characters are shown escaped, never raw
    assert RULE.replace("\\", "") in str(raised.value)


def test_defaults_give_singularity_sizes() -> None:
    assert validate_sizes("31.5GiB", None, "1MiB") == SizeLimits(33_822_867_456, 32 * GIB, MIB)


def test_empty_piece_size_is_next_power_of_two_of_max_size() -> None:
    assert validate_sizes(2_000_000, "", None).piece_size == 2 * MIB
    assert validate_sizes("3.5MiB", None, None).piece_size == 4 * MIB


def test_empty_min_piece_size_means_one_mib() -> None:
    assert validate_sizes("31.5GiB", None, "").min_piece_size == MIB
    assert validate_sizes("31.5GiB", None, None).min_piece_size == MIB


def test_sizes_accept_bytes_and_units() -> None:
    limits = validate_sizes("1000000", 2 * MIB, "512KiB")
    assert limits == SizeLimits(1_000_000, 2 * MIB, 512 * 1024)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("maxSize", {"max_size": "lots"}),
        ("pieceSize", {"piece_size": "1XB"}),
        ("minPieceSize", {"min_piece_size": "-1"}),
    ],
)
def test_unparseable_sizes_name_the_field(field: str, kwargs: dict[str, str]) -> None:
    args: dict[str, str | None] = {
        "max_size": "1000MiB",
        "piece_size": None,
        "min_piece_size": None,
    }
    args.update(kwargs)
    with pytest.raises(InvalidParameter, match=f"^{field}: invalid size"):
        validate_sizes(args["max_size"] or "", args["piece_size"], args["min_piece_size"])


def test_rule_2_piece_size_must_be_a_power_of_two() -> None:
    with pytest.raises(InvalidParameter, match="pieceSize must be a power of two, got 3000000"):
        validate_sizes("1MiB", "3000000", None)


def test_rule_3_piece_size_at_most_64_gib() -> None:
    assert validate_sizes("63GiB", "64GiB", None).piece_size == 64 * GIB
    with pytest.raises(InvalidParameter, match="pieceSize must be at most 64 GiB"):
        validate_sizes("1GiB", "128GiB", None)
    # No pieceSize given: a huge maxSize is reported as a maxSize problem (the user never set
    # pieceSize), with the largest maxSize that works.
    for huge in ("65GiB", 10**30):
        with pytest.raises(
            InvalidParameter,
            match=rf"^maxSize must be at most {LARGEST_DERIVED_MAX_SIZE} bytes \(63\.5 GiB\), got",
        ):
            validate_sizes(huge, None, None)
    assert validate_sizes(LARGEST_DERIVED_MAX_SIZE, None, None).piece_size == 64 * GIB


def test_rule_4_max_size_needs_room_for_padding() -> None:
    with pytest.raises(
        InvalidParameter,
        match=r"maxSize needs to be reduced to leave space.*\(derived from maxSize: its next",
    ):
        validate_sizes("32GiB", None, None)
    # The integer boundary: maxSize*128//127 must be strictly less than pieceSize.
    piece = 4 * MIB
    largest = (piece * 127 - 1) // 128
    assert largest * 128 // 127 < piece
    assert validate_sizes(largest, piece, None).max_size == largest
    with pytest.raises(InvalidParameter, match="maxSize needs to be reduced"):
        validate_sizes(largest + 1, piece, None)


def test_rule_5_min_piece_size_not_larger_than_piece_size() -> None:
    with pytest.raises(
        InvalidParameter, match="minPieceSize 2097152 must not be larger than pieceSize 1048576"
    ):
        validate_sizes("1000000", None, "2MiB")


def test_rule_5_min_piece_size_must_be_a_power_of_two() -> None:
    with pytest.raises(InvalidParameter, match="minPieceSize must be a power of two, got 1000000"):
        validate_sizes("31.5GiB", None, "1MB")


def test_rules_apply_in_order() -> None:
    # Both rule 2 (pieceSize not a power of two) and rule 5 (bad minPieceSize) are broken:
    # the earlier rule is the one reported.
    with pytest.raises(InvalidParameter, match="pieceSize must be a power of two"):
        validate_sizes("1MiB", "3000000", "3")


def test_folders_are_resolved_to_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path)
    source, output = resolve_folders("src", "out")
    assert source == tmp_path / "src"
    assert output == tmp_path / "out"
    assert not output.exists()  # created only when the preparation is created


def test_source_must_be_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match=r'source ".*missing" is not an existing directory'):
        resolve_folders(str(tmp_path / "missing"), str(tmp_path / "out"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidParameter, match="is not an existing directory"):
        resolve_folders(str(tmp_path / "file"), str(tmp_path / "out"))
    with pytest.raises(InvalidParameter, match="source must not be empty"):
        resolve_folders("", str(tmp_path / "out"))


@pytest.mark.parametrize("output", [None, "", "  "])
def test_no_output_is_an_inline_preparation(tmp_path: Path, output: str | None) -> None:
    assert resolve_folders(str(tmp_path), output) == (tmp_path.resolve(), None)


def test_output_must_not_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "out").write_text("x")
    with pytest.raises(InvalidParameter, match=r'output ".*out" exists and is not a directory'):
        resolve_folders(str(tmp_path / "src"), str(tmp_path / "out"))


@pytest.mark.parametrize("inner", ["", "cars", "a/b"])
def test_output_must_not_be_inside_the_source(tmp_path: Path, inner: str) -> None:
    with pytest.raises(InvalidParameter, match="must not be the source folder or inside it"):
        resolve_folders(str(tmp_path), str(tmp_path / inner))


def test_output_may_contain_the_source(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    assert resolve_folders(str(tmp_path / "src"), str(tmp_path))[1] == tmp_path


@pytest.mark.parametrize("size", ["64B", "64", "1", "2"])
def test_min_piece_size_below_the_smallest_piece_is_refused(size: str) -> None:
    with pytest.raises(
        InvalidParameter,
        match=r"^minPieceSize must be at least 128 bytes, got \d+: the smallest Filecoin piece "
        r"is 128 bytes \(127 bytes of data after Fr32 padding\)",
    ):
        validate_sizes("31.5GiB", None, size)
    assert validate_sizes("31.5GiB", None, "128B").min_piece_size == 128


def test_piece_size_below_the_smallest_piece_is_refused() -> None:
    with pytest.raises(
        InvalidParameter, match=r"^pieceSize must be at least 128 bytes, got 64: the smallest"
    ):
        validate_sizes("10", "64", "64")
    assert validate_sizes("100", "128", "128") == SizeLimits(100, 128, 128)


def test_a_max_size_too_small_for_any_piece_is_a_max_size_problem() -> None:
    with pytest.raises(
        InvalidParameter, match=r"^maxSize must be at least 65 bytes, got 64: the piece size is"
    ):
        validate_sizes("64B", None, "128")
    assert validate_sizes("65", None, "128").piece_size == 128


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("maxSize", {"max_size": "1.5"}),
        ("pieceSize", {"piece_size": "0.3KiB"}),
        ("minPieceSize", {"min_piece_size": "1.5"}),
    ],
)
def test_fractional_bytes_are_refused_naming_the_field(field: str, kwargs: dict[str, str]) -> None:
    args: dict[str, str | None] = {
        "max_size": "1000MiB",
        "piece_size": None,
        "min_piece_size": None,
    }
    args.update(kwargs)
    with pytest.raises(InvalidParameter, match=rf"^{field}: invalid size .* whole number of bytes"):
        validate_sizes(args["max_size"] or "", args["piece_size"], args["min_piece_size"])


@pytest.mark.parametrize("field", ["source", "output"])
# A bare name such as "data" is a storage reference over HTTP (it must name a storage, see
# tests/integration/test_prep_storage_refs.py); relative paths are refused here.
@pytest.mark.parametrize("path", [".", "data/x", "../x", "~/x"])
def test_http_folders_must_be_absolute(tmp_path: Path, field: str, path: str) -> None:
    fields = {"source": str(tmp_path), "output": str(tmp_path / "out"), field: path}
    request = CreatePreparationRequest(name="p", **fields)
    [problem] = relative_folder_problems(request)
    assert problem.field == field
    assert str(problem).startswith(f'{field} must be an absolute path, got "{path}"')
    assert (
        relative_folder_problems(CreatePreparationRequest(name="p", source="/a", output="/b")) == []
    )


@pytest.mark.parametrize(
    ("typed", "exact", "rounded", "piece"),
    [
        ("64MiB", "63.49999904632568359375MiB", "63MiB", "128MiB"),
        ("1GiB", "0.992187499068677425384521484375GiB", "1015.5MiB", "2GiB"),
        ("32GiB", "31.749999999068677425384521484375GiB", "31.5GiB", "64GiB"),
        ("64KiB", "63.4990234375KiB", "63KiB", "128KiB"),
    ],
)
def test_a_max_size_without_room_for_padding_gets_sizes_that_work(
    typed: str, exact: str, rounded: str, piece: str
) -> None:
    """The refusal proposes, in the user's unit, the exact largest valid max size, a round one,
    and the piece size that takes the typed max size; each of them is accepted."""
    with pytest.raises(InvalidParameter) as refused:
        validate_sizes(typed, None, "128")
    message = str(refused.value)
    assert exact in message and f"e.g. {rounded}" in message
    assert f"pieceSize to {piece} (--piece-size)" in message
    largest = parse_size(exact)
    assert validate_sizes(exact, None, "128").max_size == largest
    with pytest.raises(InvalidParameter):
        validate_sizes(largest + 1, None, "128")  # the exact one really is the largest
    assert validate_sizes(rounded, None, "128").max_size <= largest
    assert validate_sizes(typed, piece, "128").piece_size == parse_size(piece)
