"""Where catalog reference images come from: a folder tree, a CSV manifest, or the synthetic demo.

Each source yields `ImportItem`s (bytes loaded lazily) and `Skip`s for entries it cannot use, so
the import can report everything it left out and why.
"""

import csv
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".dcm"}
IMAGE_COLUMNS = ("image", "image_path", "image_url", "path", "url", "file")
ATTRIBUTES_FILE = "attributes.json"
SPEC_FILE = "spec.json"  # a system's geometry spec (raiox.synth.SPEC_SCHEMA): lets the connection reader re-rank it


@dataclass
class ImportItem:
    system_id: str
    manufacturer: str
    system: str
    origin: str  # file path, URL or demo reference: shown in reports, stored on the image
    load: Callable[[], bytes]
    attributes: dict = field(default_factory=dict)
    spec: dict | None = None
    source: str = "import"
    row: str | None = None  # the manifest row it came from ("catalog.csv:7"), for the import report
    name: str | None = None  # the file's own name where ORIGIN does not end with it: only a hint for decoding it

    @property
    def label(self) -> str:
        """How the import report names it: the manifest row first, when there is one."""
        return f"{self.row} ({self.origin})" if self.row else self.origin

    @property
    def filename(self) -> str:
        return self.name or self.origin.rsplit("/", 1)[-1]


@dataclass
class Skip:
    origin: str
    reason: str


MANUFACTURER_MAX, NAME_MAX = 200, 300  # the catalog's columns (raiox.models.ImplantSystem)


def names_problem(manufacturer: str, system: str) -> str | None:
    """Why a manufacturer / system name cannot be stored (too long, a control character, a file name that is not
    UTF-8): the row is skipped with this reason instead of failing the whole batch in the database."""
    for what, value, limit in (("manufacturer", manufacturer, MANUFACTURER_MAX), ("system name", system, NAME_MAX)):
        if len(value) > limit:
            return f"{what} longer than {limit} characters"
        if re.search(r"[\x00-\x1f\x7f]", value):
            return f"{what} holds a control character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{what} is not UTF-8 text (a folder named in another encoding?)"
    return None


def printable(text: str) -> str:
    """TEXT safe to print and store: bytes a file name could not decode shown as escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def slugify(*parts: str) -> str:
    """Stable system id: ASCII, lower case, dashes (e.g. "Neodent" + "Grand Morse" -> neodent-grand-morse;
    "Conexão" -> conexao); "system" when nothing of PARTS is a letter or digit."""
    return slug(" ".join(parts)) or "system"


def slug(text: str) -> str:
    """TEXT as a system id (accents folded, anything else but letters and digits a dash); "" when nothing is left."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:120]


def _coerce(value: str) -> object:
    value = value.strip()
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def storable(value: object, where: str = "") -> object:
    """``value`` unchanged when PostgreSQL's jsonb can hold it, else ValueError saying where: jsonb refuses NaN
    and infinities (``x=nan``, ``1e400``, JSON's ``NaN``) and the NUL character."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'value'}: not a finite number ({value})")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where or 'value'}: holds a NUL character")
    if isinstance(value, dict):
        for key, item in value.items():
            storable(key, where)
            storable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            storable(item, f"{where}[{index}]")
    return value


def check_object(value: object, what: str) -> dict:
    """A JSON object (dict) whose numbers are finite, as jsonb stores it; ValueError otherwise."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, not {type(value).__name__}")
    return storable(value)


def parse_attributes(raw: str | None) -> dict:
    """JSON object, or `key=value` pairs separated by `;` (or `,`; a piece without `=` continues the
    previous value, so `diameters=3.5,4.0` survives)."""
    raw = (raw or "").strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        return check_object(json.loads(raw), "attributes")
    attributes: dict[str, object] = {}
    last = None
    for piece in re.split(r"[;,]", raw):
        key, sep, value = piece.partition("=")
        if sep and key.strip():
            last = key.strip()
            attributes[last] = value.strip()
        elif last is not None and piece.strip():
            attributes[last] = f"{attributes[last]},{piece.strip()}"
        elif piece.strip():
            raise ValueError(f"attribute without '=': {piece.strip()!r}")
    return check_object({key: _coerce(value) for key, value in attributes.items()}, "attributes")


def _read_file(path: Path) -> Callable[[], bytes]:
    return lambda: path.read_bytes()


def _system_attributes(folder: Path) -> dict:
    path = folder / ATTRIBUTES_FILE
    return check_object(json.loads(path.read_text()), "attributes") if path.is_file() else {}


def parse_spec(raw: str | dict | None) -> dict | None:
    """A geometry spec (JSON text or object), validated against ``raiox.synth.SPEC_SCHEMA``; None when empty."""
    from raiox.synth import validate_spec

    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    spec = check_object(json.loads(raw) if isinstance(raw, str) else raw, "a spec")
    try:
        validate_spec(spec)
    except Exception as exc:  # jsonschema's ValidationError: its first line names the field
        raise ValueError(str(exc).splitlines()[0]) from exc
    return spec


def _system_spec(folder: Path) -> dict | None:
    path = folder / SPEC_FILE
    return parse_spec(path.read_text()) if path.is_file() else None


def from_folder(root: Path) -> Iterator[ImportItem | Skip]:
    """ROOT/MANUFACTURER/SYSTEM/*.{png,jpg,jpeg,tif,tiff,bmp,webp,dcm} (+ optional attributes.json)."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        shown = printable(str(rel))
        if any(part.startswith(".") for part in rel.parts) or path.name in (ATTRIBUTES_FILE, SPEC_FILE):
            continue
        if len(rel.parts) != 3:
            yield Skip(shown, "not in a MANUFACTURER/SYSTEM/ folder")
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            yield Skip(shown, f"unsupported file type {printable(path.suffix) or '(none)'}")
        elif why := names_problem(rel.parts[0], rel.parts[1]):
            yield Skip(shown, why)
        elif shown != str(rel):
            yield Skip(shown, "file name is not UTF-8 text (named in another encoding?)")
        else:
            manufacturer, system = rel.parts[0], rel.parts[1]
            try:
                attributes = _system_attributes(path.parent)
            except (ValueError, OSError) as exc:
                yield Skip(str(rel), f"bad {ATTRIBUTES_FILE}: {exc}")
                continue
            try:
                spec = _system_spec(path.parent)
            except (ValueError, OSError) as exc:
                yield Skip(str(rel), f"bad {SPEC_FILE}: {exc}")
                continue
            yield ImportItem(slugify(manufacturer, system), manufacturer, system, str(rel), _read_file(path),
                             attributes, spec=spec)


def _download(url: str) -> Callable[[], bytes]:
    def load() -> bytes:
        import httpx

        from raiox.kit.settings import get_settings

        limit = get_settings().download_max_bytes
        with httpx.stream("GET", url, timeout=30, follow_redirects=True) as response:
            response.raise_for_status()
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise ValueError(f"larger than {limit} bytes")
        return bytes(data)

    return load


def from_manifest(path: Path) -> Iterator[ImportItem | Skip]:
    """CSV with columns manufacturer, system, attributes, and an image path (relative to the CSV) or URL."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            columns = {name.strip().lower(): name for name in reader.fieldnames or []}
            image_column = next((columns[c] for c in IMAGE_COLUMNS if c in columns), None)
            missing = [c for c in ("manufacturer", "system") if c not in columns]
            if missing or image_column is None:
                need = ", ".join(missing + ([] if image_column else ["image (path or URL)"]))
                raise ValueError(f"{path.name}: missing column(s): {need}")
            for row in reader:
                yield _manifest_row(path, reader.line_num, row, columns, image_column)
        except csv.Error as exc:  # a field over the csv module's limit, a NUL byte...
            raise ValueError(f"{path.name}: line {reader.line_num + 1}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path.name}: not UTF-8 text (byte {exc.start} of line {reader.line_num + 1}); "
                             "save the manifest as UTF-8") from None


def _manifest_row(path: Path, line: int, row: dict, columns: dict, image_column: str) -> ImportItem | Skip:
    manufacturer = (row.get(columns["manufacturer"]) or "").strip()
    system = (row.get(columns["system"]) or "").strip()
    image = (row.get(image_column) or "").strip()
    origin = f"{path.name}:{line}"
    if not (manufacturer and system and image):
        return Skip(origin, "row needs manufacturer, system and image")
    if why := names_problem(manufacturer, system):
        return Skip(origin, why)
    try:
        attributes = parse_attributes(row.get(columns["attributes"]) if "attributes" in columns else None)
    except ValueError as exc:
        return Skip(origin, f"bad attributes: {exc}")
    try:
        spec = parse_spec(row.get(columns["spec"]) if "spec" in columns else None)
    except ValueError as exc:
        return Skip(origin, f"bad spec: {exc}")
    if re.match(r"^https?://", image, re.I):
        return ImportItem(slugify(manufacturer, system), manufacturer, system, image, _download(image), attributes,
                          spec=spec, row=origin)
    file = Path(image) if Path(image).is_absolute() else path.parent / image
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        return Skip(f"{origin} ({image})", f"unsupported file type {file.suffix or '(none)'}")
    return ImportItem(slugify(manufacturer, system), manufacturer, system, str(file), _read_file(file), attributes,
                      spec=spec, row=origin)


def from_path(path: Path) -> Iterator[ImportItem | Skip]:
    if path.is_dir():
        return from_folder(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return from_manifest(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    raise ValueError(f"{path}: expected a folder MANUFACTURER/SYSTEM/*.png|jpg|dcm... or a CSV manifest")


def from_demo(systems: list, refs_per_system: int | None = None,
              restored_sizes: int | None = None) -> Iterator[ImportItem]:
    """The synthetic demo catalog (``raiox.synth.reference_plan``): `refs_per_system` clean renders per
    system (None: one per size of the line, at least 6, ``raiox.synth.reference_count``), reference
    ``k`` (seed k) at the line's k-th size (``raiox.synth.line_size``; 0 is the base size), then the
    same fixture with a cover screw, healing cap, abutment and crown at the first `restored_sizes`
    sizes (None: ``raiox.synth.catalog.RESTORED_SIZES``)."""
    from raiox.synth import line_size, reference_plan, render_reference, to_png

    for demo in systems:
        for ref in reference_plan(demo, refs_per_system, restored_sizes):
            spec = line_size(demo, ref.size)
            yield ImportItem(
                demo.id, demo.manufacturer, demo.name, f"demo:{demo.id}#{ref.tag}.png",
                lambda spec=spec, ref=ref: to_png(render_reference(spec, ref.seed, prosthesis=ref.prosthesis)),
                dict(demo.attributes), spec=demo.spec, source="demo",
            )
