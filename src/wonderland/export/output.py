"""Writing an export tree to a folder, replacing an earlier export there."""

from __future__ import annotations

from pathlib import Path

from wonderland.errors import ConfigError
from wonderland.export.tree import ExportTree

__all__ = ["write_tree"]

_MARK = "# Written by `wonderland export`"


def write_tree(tree: ExportTree, out: Path) -> list[Path]:
    """Write ``tree`` under ``out``. A folder that holds files but no earlier export is
    refused; an earlier export's YAML files and notes are replaced (other files, such as a
    README, stay)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: not a folder; give a folder to write the export to")
    if out.is_dir() and any(out.iterdir()):
        kustomization = out / "kustomization.yaml"
        if not kustomization.is_file() or not kustomization.read_text().startswith(_MARK):
            raise ConfigError(
                f"-o {out}: the folder holds files that are not an earlier export; "
                "give an empty or new folder"
            )
        for old in sorted(out.rglob("*.yaml"), reverse=True):
            old.unlink()
        (out / "EXPORT-NOTES.md").unlink(missing_ok=True)
        for folder in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
    written: list[Path] = []
    for rel, text in tree.files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
