"""``naiad firmware``: release keys, packing, inspecting, verifying and trusting firmware bundles.

Presentation only: every decision is made in :mod:`firmware`; this module turns arguments into
calls, progress callbacks into rich bars, and errors into a message with its remedy (or JSON).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from firmware.bundle import Bundle
from firmware.manifest import Manifest
from firmware.pack import ModelSpec, PartitionSource, pack_bundle
from firmware.signing import (
    ECDSA_P256,
    ED25519,
    PASSPHRASE_ENV,
    TrustStore,
    generate_release_key,
    load_private_key,
    private_key_is_encrypted,
    short_key_id,
)
from firmware.summary import signature_status
from i18n import N_, _
from terminal.models import model_by_id

from .cli_common import Group, byte_bar, emit_json, json_option, option, out, output_errors, reported, table

_ALGORITHMS = {"ed25519": ED25519, "ecdsa-p256": ECDSA_P256}


def _passphrase_from_env() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


# --- commands ----------------------------------------------------------------------------------------


@click.group("firmware", cls=Group, help=N_("Signed firmware bundles: keys, packing, checking, trust."))
def firmware() -> None:
    pass


@firmware.command("keygen", help=N_("Create a release key pair: DIR/release.key and DIR/release.pub."))
@option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help=N_("Directory for the key files (created if missing)."),
)
@option(
    "--algorithm",
    type=click.Choice(sorted(_ALGORITHMS)),
    default="ed25519",
    show_default=True,
    help=N_("Signature algorithm of the key."),
)
@option("--no-passphrase", is_flag=True, help=N_("Store the private key unencrypted (only for test keys)."))
@json_option
def keygen(out_dir: Path, algorithm: str, no_passphrase: bool, as_json: bool) -> None:
    passphrase = None if no_passphrase else _passphrase_from_env()
    if passphrase is None and not no_passphrase:
        entered = click.prompt(
            _("Passphrase for the new release key (empty for none)"),
            hide_input=True,
            confirmation_prompt=True,
            default="",
            show_default=False,
        )
        passphrase = entered.encode("utf-8") if entered else None
    with reported(as_json), output_errors(out_dir):
        files = generate_release_key(out_dir, passphrase, _ALGORITHMS[algorithm])
    result = {
        "private_key": str(files.private),
        "public_key": str(files.public),
        "key_id": files.key_id,
        "algorithm": _ALGORITHMS[algorithm],
        "encrypted": passphrase is not None,
    }
    if as_json:
        emit_json(result)
        return
    console = out()
    console.print(_("Release key {key_id} written:", key_id=short_key_id(files.key_id)))
    console.print(f"  {files.private}")
    console.print(f"  {files.public}")
    if passphrase is None:
        console.print(_("Warning: the private key is not protected by a passphrase."), style="yellow")
    console.print(_("Stations trust it with: naiad firmware trust {path}", path=files.public), soft_wrap=True)


@firmware.command("pack", help=N_("Pack partition images into a signed firmware bundle."))
@option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=N_("The release private key (release.key)."),
)
@option(
    "--model",
    "models",
    required=True,
    multiple=True,
    help=N_("A target model id, optionally with revisions (df2 or df2:A,B); repeat for more."),
)
@option("--version", "version", required=True, help=N_("The release version, e.g. 2.4.1."))
@option(
    "--security-version",
    required=True,
    type=int,
    help=N_("The anti-rollback security version (units refuse lower ones)."),
)
@option(
    "--partition",
    "partitions",
    required=True,
    multiple=True,
    help=N_("NAME=FILE: the image for one partition; repeat for more, in flashing order."),
)
@option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=N_("The bundle file to write."),
)
@option("--compress/--no-compress", default=True, show_default=True, help=N_("Deflate images where it saves space."))
@option(
    "--compress-level",
    type=click.IntRange(1, 9),
    default=6,
    show_default=True,
    help=N_("Deflate level: 1 packs fastest, 9 makes the smallest bundle."),
)
@option("--force", is_flag=True, help=N_("Replace an existing output file."))
@json_option
def pack(
    key_path: Path,
    models: tuple[str, ...],
    version: str,
    security_version: int,
    partitions: tuple[str, ...],
    output: Path,
    compress: bool,
    compress_level: int,
    force: bool,
    as_json: bool,
) -> None:
    with reported(as_json):
        model_specs = [ModelSpec.parse(m) for m in models]
        sources = [PartitionSource.parse(p) for p in partitions]
        passphrase = None
        if private_key_is_encrypted(key_path):
            passphrase = _passphrase_from_env()
            if passphrase is None:
                passphrase = click.prompt(_("Passphrase of {path}", path=key_path), hide_input=True).encode("utf-8")
        key = load_private_key(key_path, passphrase)
        with output_errors(output), byte_bar(not as_json, _("Packing")) as update:
            manifest = pack_bundle(
                output,
                key=key,
                models=model_specs,
                version=version,
                security_version=security_version,
                partitions=sources,
                compress=compress,
                compress_level=compress_level,
                overwrite=force,
                progress=lambda name, done, total: update(done, total),
            )
    if as_json:
        emit_json({"bundle": str(output), "manifest": manifest.to_dict()})
        return
    out().print(
        _(
            "Wrote {path}: version {version}, security version {security_version}, {count} image(s)",
            path=output,
            version=manifest.version,
            security_version=manifest.security_version,
            count=len(manifest.partitions),
        ),
        soft_wrap=True,
    )


def _manifest_table(manifest: Manifest) -> Any:
    shown = table(
        N_("Partition"),
        N_("Type"),
        N_("Size"),
        N_("Expanded"),
        N_("SHA-256"),
        title=_("Partitions (in flashing order)"),
        title_justify="left",
        column={"overflow": "fold"},
    )
    for image in manifest.partitions:
        shown.add_row(image.name, image.type, f"{image.size:,}", f"{image.expanded_size:,}", image.sha256[:16] + "…")
    return shown


@firmware.command("inspect", help=N_("Show what a bundle holds and who signed it (no image hashing)."))
@click.argument("bundle_path", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def inspect(bundle_path: Path, as_json: bool) -> None:
    with reported(as_json), Bundle.open(bundle_path, TrustStore(), require_trusted=False) as bundle:
        manifest = bundle.manifest
        status = signature_status(bundle.trust_error)
        if as_json:
            emit_json(
                {
                    "bundle": str(bundle_path),
                    "manifest": manifest.to_dict(),
                    "signature": {
                        "algorithm": bundle.signature.algorithm,
                        "key_id": bundle.signature.key_id,
                        "status": status,
                        "problem": None if bundle.trust_error is None else str(bundle.trust_error),
                    },
                }
            )
            return
        console = out()
        console.print(str(bundle_path), style="bold", markup=False)
        console.print(_("Version: {version}", version=manifest.version))
        console.print(_("Security version: {value}", value=manifest.security_version))
        if manifest.created:
            console.print(_("Created: {when}", when=manifest.created))
        for compat in manifest.compatible:
            console.print(
                _(
                    "For {model}, revisions {revisions}",
                    model=compat.model,
                    revisions=", ".join(compat.hardware_revisions),
                )
            )
        key = short_key_id(bundle.signature.key_id)
        if bundle.trust_error is None:
            console.print(
                _("Signed by trusted key {key_id} ({algorithm})", key_id=key, algorithm=bundle.signature.algorithm),
                style="green",
            )
        else:
            console.print(str(bundle.trust_error), style="bold red", soft_wrap=True)
        console.print(_manifest_table(manifest))


@firmware.command("verify", help=N_("Check a bundle's signature and every image hash, and optionally a unit's fit."))
@click.argument("bundle_path", type=click.Path(dir_okay=False, path_type=Path))
@option("--model", "model_id", help=N_("Also check the bundle fits this model id."))
@option("--hardware-revision", help=N_("The unit's hardware revision (with --model)."))
@option(
    "--unit-security-version",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help=N_("The unit's current security version (with --model)."),
)
@json_option
def verify(
    bundle_path: Path, model_id: str | None, hardware_revision: str | None, unit_security_version: int, as_json: bool
) -> None:
    if (model_id is None) != (hardware_revision is None):
        raise click.UsageError(_("--model and --hardware-revision go together"))
    with reported(as_json), Bundle.open(bundle_path, TrustStore()) as bundle:
        if model_id is not None and hardware_revision is not None:
            bundle.check_compatible(model_by_id(model_id), hardware_revision, unit_security_version)
        with byte_bar(not as_json, _("Verifying")) as update:
            bundle.verify(lambda name, done, total: update(done, total))
        if as_json:
            emit_json(
                {
                    "bundle": str(bundle_path),
                    "valid": True,
                    "version": bundle.manifest.version,
                    "security_version": bundle.manifest.security_version,
                    "key_id": bundle.signature.key_id,
                    "partitions": [p.name for p in bundle.partitions],
                }
            )
            return
        out().print(
            _(
                "{path}: the signature and {count} image(s) are valid (version {version})",
                path=bundle_path,
                count=len(bundle.partitions),
                version=bundle.manifest.version,
            ),
            style="green",
            soft_wrap=True,
        )


@firmware.command("trust", help=N_("Trust a release public key on this station."))
@click.argument("public_key", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def trust(public_key: Path, as_json: bool) -> None:
    with reported(as_json):
        store = TrustStore()
        kid = store.add(public_key)
    if as_json:
        emit_json({"key_id": kid, "trust_store": str(store.directory)})
        return
    out().print(_("Trusting release key {key_id}", key_id=short_key_id(kid)), soft_wrap=True)


@firmware.command("trusted", help=N_("List the release keys this station trusts."))
@json_option
def trusted(as_json: bool) -> None:
    with reported(as_json):
        store = TrustStore()
        keys = store.keys()
    if as_json:
        emit_json({"trust_store": str(store.directory), "key_ids": sorted(keys)})
        return
    console = out()
    if not keys:
        console.print(_("No trusted release keys in {path}", path=store.directory), soft_wrap=True)
        return
    for kid in sorted(keys):
        console.print(kid)
