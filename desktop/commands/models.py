"""`captioneer models list | pull | remove | verify`: the model catalog and the downloaded models."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from captioneer.backends.catalog import Variant


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, download, check and remove models",
        description="Models are downloaded from the Hugging Face hub into Captioneer's data folder (not a "
        "cache), pinned to a commit, resumed after interruptions and checked by size and SHA-256. Ollama "
        "profiles are pulled by Ollama itself.",
    )
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every profile in the catalog, and which are downloaded")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)

    pull = actions.add_parser("pull", help="download a profile (resumes and repairs an earlier download)")
    pull.add_argument("profile", metavar="PROFILE", help="a profile from `models list`, or an Ollama tag")
    pull.add_argument("--update", action="store_true", help="move to the repository's newest commit")
    pull.add_argument("--host", help="Ollama address for Ollama profiles")
    pull.set_defaults(func=run_pull)

    remove = actions.add_parser("remove", help="delete a downloaded profile's files")
    remove.add_argument("profile", metavar="PROFILE")
    remove.set_defaults(func=run_remove)

    verify = actions.add_parser("verify", help="re-check downloaded files against their SHA-256")
    verify.add_argument("profile", nargs="?", metavar="PROFILE", help="only this profile (default: all)")
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=run_verify)


class _TerminalProgress:
    """Progress on stderr: one line rewritten in a terminal, a line per 10 % otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_step = -1

    def __call__(self, fraction: float, message: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r{fraction * 100:5.1f} %  {message[:100]:<100}")
            sys.stderr.flush()
            return
        step = int(fraction * 10)
        if step != self.last_step:
            self.last_step = step
            print(f"{fraction * 100:5.1f} %  {message}", file=sys.stderr)

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _ollama_tags(host: str | None) -> tuple[set[str] | None, str]:
    """The tags Ollama has pulled, or None and why not."""
    from captioneer.backends.errors import CaptioneerError
    from captioneer.backends.hardware_probes import probe_ollama
    from captioneer.backends.ollama_engine import installed_models

    status = probe_ollama(host)
    if not status.running:
        return None, f"Ollama is not running at {status.host}"
    try:
        return {model.name for model in installed_models(status.host)}, ""
    except CaptioneerError as exc:
        return None, str(exc)


def _status_rows(host: str | None) -> list[tuple[Variant, dict[str, Any]]]:
    """Every catalog variant with its status row (what ``models list --json`` prints)."""
    from captioneer.backends.catalog import load_catalog
    from captioneer.backends.download import installed_model, read_manifest, store_folder
    from captioneer.desktop.core.paths import models_dir

    folder = models_dir()
    tags, ollama_note = _ollama_tags(host)
    rows = []
    for variant in load_catalog().variants:
        row: dict[str, Any] = {
            "profile": variant.id,
            "model": variant.model.id,
            "engine": variant.engine,
            "quant": variant.quant,
            "download_gb": round(variant.download_gb, 2),
            "source": variant.repo or variant.tag,
        }
        if variant.entry.server_pulls_models:
            if tags is None:
                row["status"], row["detail"] = "unknown", ollama_note
            else:
                row["status"], row["detail"] = ("in Ollama" if variant.tag in tags else "not pulled"), ""
        else:
            installed = installed_model(variant, folder)
            manifest = read_manifest(store_folder(folder, variant))
            if installed is not None:
                row["status"], row["detail"] = "downloaded", str(installed.folder)
                row["revision"] = installed.manifest.revision
            elif manifest is not None:
                row["status"] = "partial"
                row["detail"] = f"run `captioneer models pull {variant.id}` to resume"
            else:
                row["status"], row["detail"] = "not downloaded", ""
        rows.append((variant, row))
    return rows


def run_list(args: argparse.Namespace) -> int:
    from captioneer.desktop.core.settings import load_settings

    rows = _status_rows(load_settings().ollama_host)
    if args.json:
        print(json.dumps([row for _, row in rows], indent=2, sort_keys=True))
        return 0
    print(f"{'profile':<32} {'engine':<12} {'quant':<7} {'size':>8}  status")
    for variant, row in rows:
        name = variant.pull_name
        status = f"{row['status']} ({row['detail']})" if row["detail"] else row["status"]
        print(f"{name:<32} {row['engine']:<12} {row['quant']:<7} {row['download_gb']:>5.1f} GB  {status}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from captioneer.backends.catalog import load_catalog
    from captioneer.backends.download import pull
    from captioneer.desktop.core.paths import models_dir
    from captioneer.desktop.core.settings import load_settings

    variant = load_catalog().find(args.profile)
    progress = _TerminalProgress()
    try:
        if variant.entry.server_pulls_models:
            from captioneer.backends.ollama_engine import pull_model

            pull_model(args.host or load_settings().ollama_host, variant.tag or "", progress)
            print(f"{variant.tag} is in Ollama. Use it with:")
            print(f"  captioneer caption --engine ollama --model {variant.tag} PHOTO")
            return 0
        installed = pull(variant, models_dir(), update=args.update, progress=progress)
    finally:
        progress.done()
    print(f"{variant.id} is ready in {installed.folder} (commit {installed.manifest.revision[:12]}).")
    if installed.mmproj_path is not None:
        print(
            f"Use it with: captioneer caption --engine {variant.engine} --model '{installed.model_path}' "
            f"--mmproj '{installed.mmproj_path}' PHOTO"
        )
    else:
        print(f"Use it with: captioneer caption --engine {variant.engine} --model '{installed.model_path}' "
              f"--quant {variant.quant} PHOTO")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from captioneer.backends.catalog import load_catalog
    from captioneer.backends.download import remove
    from captioneer.desktop.core.paths import models_dir

    variant = load_catalog().find(args.profile)
    removed = remove(variant, models_dir())
    if removed is None:
        print(f"{variant.id} is not downloaded; nothing to remove.")
        return 0
    sharing = [other.id for other in load_catalog().by_store(variant.store or "") if other.id != variant.id]
    also = f" (shared with {', '.join(sharing)})" if sharing else ""
    print(f"Removed {removed}{also}.")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from captioneer.backends.catalog import load_catalog
    from captioneer.backends.download import downloaded, verify
    from captioneer.desktop.core.paths import models_dir

    catalog = load_catalog()
    folder = models_dir()
    if args.profile:
        variants = [catalog.find(args.profile)]
    else:
        variants = [catalog.by_store(store.name)[0] for store, _ in downloaded(folder, catalog)]
    report = {variant.store: verify(variant, folder) for variant in variants}
    bad = sorted(store for store, checks in report.items() if not all(check.ok for check in checks))
    if args.json:
        payload = {
            store: [{"file": c.name, "status": c.status, "detail": c.detail} for c in checks]
            for store, checks in report.items()
        }
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        if not report:
            print("No models are downloaded.")
        for store, checks in report.items():
            for check in checks:
                detail = f" ({check.detail})" if check.detail else ""
                print(f"{store}: {check.name}: {check.status}{detail}")
        for store in bad:
            print(f"{store} is damaged or incomplete: run `captioneer models pull {store}` to repair it.",
                  file=sys.stderr)
    return 1 if bad else 0
