"""Typed errors of the firmware domain: bundles, signatures, compatibility and sparse images.

Every refusal a bundle can earn before a byte reaches a unit has its own class, so the station, the
ledger and the tests can tell them apart without reading message text.  Parameters hold names, sizes
and key ids only: never key material or passphrases.
"""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError


class FirmwareError(NaiadError):
    message = N_("Firmware error: {detail}")


# --- the container -----------------------------------------------------------------------------------


class BundleError(FirmwareError):
    message = N_("The firmware bundle {path} is unusable: {detail}")
    remedy = N_("Download the bundle again from the release server; do not edit or repack it by hand.")


class BundleNotFound(BundleError):
    message = N_("No firmware bundle at {path}")
    remedy = N_("Check the path; 'naiad firmware inspect FILE' shows what a bundle holds.")


class NotABundleFile(BundleError):
    message = N_("{path} is a directory, not a firmware bundle file")
    remedy = N_("Give the path of the bundle file itself (the .zip from the release server).")


class SpecialBundleFile(NotABundleFile):
    message = N_("{path} is a pipe, device or socket, not a firmware bundle file; reading it could wait forever")


class MalformedBundle(BundleError):
    message = N_("The firmware bundle {path} is damaged or not a bundle: {detail}")


class UnsupportedBundleFormat(BundleError):
    message = N_("The firmware bundle {path} uses format {format}, which this station does not read")
    remedy = N_("Update Naiad on this station, then open the bundle again.")


class TooManyMembers(BundleError):
    message = N_("The firmware bundle {path} holds {count} members; at most {limit} are allowed")


class UnsafeMemberPath(BundleError):
    message = N_("The firmware bundle {path} has a member with an unsafe name: {member}")


class PathTraversalMember(UnsafeMemberPath):
    message = N_("The firmware bundle {path} has a member that climbs out of the bundle: {member}")


class AbsoluteMemberPath(UnsafeMemberPath):
    message = N_("The firmware bundle {path} has a member with an absolute name: {member}")


class SpecialMember(BundleError):
    message = N_("The firmware bundle {path} has a member that is not a plain file ({kind}): {member}")


class DuplicateMember(BundleError):
    message = N_("The firmware bundle {path} holds the member {member} more than once")


class UnexpectedMember(BundleError):
    message = N_("The firmware bundle {path} holds a member the manifest does not list: {member}")


class MissingMember(BundleError):
    message = N_("The firmware bundle {path} lacks the member {member}")


class OversizedMember(BundleError):
    message = N_("The member {member} of {path} is {size} bytes; the limit is {limit}")


class OversizedImage(OversizedMember):
    message = N_(
        "The image {member} of {path} is {size} bytes ({expanded_size} bytes expanded); images may be at most {limit}"
    )


class DecompressionBomb(BundleError):
    message = N_("The member {member} of {path} expands {ratio}-fold; at most {limit}-fold is allowed")


class UnsupportedMemberEncoding(BundleError):
    message = N_("The member {member} of {path} is stored in a way this station refuses: {detail}")


class OverlappingMembers(BundleError):
    message = N_("The members of {path} overlap at {member}")


class MalformedManifest(BundleError):
    message = N_("The manifest of {path} is invalid: {detail}")


class UnexpectedManifestFields(MalformedManifest):
    message = N_("The manifest of {path} has fields it may not have: {unexpected}; the allowed fields are {allowed}")


class MissingManifestFields(MalformedManifest):
    message = N_("The manifest of {path} lacks the fields {missing}")


class DuplicatePartition(BundleError):
    message = N_("The firmware bundle {path} lists the partition {partition} more than once")


# --- the signature -----------------------------------------------------------------------------------


class SignatureError(FirmwareError):
    message = N_("The signature of {path} is not acceptable: {detail}")
    remedy = N_("Use a bundle from the official release; ask the release manager if this persists.")


class MalformedSignature(SignatureError):
    message = N_("The signature of {path} is unreadable: {detail}")


class UnknownSigningKey(SignatureError):
    message = N_("The bundle {path} is signed by key {key_id}, which this station does not trust")
    remedy = N_("If the key is a genuine release key, add it with 'naiad firmware trust PUBFILE'.")


class BadSignature(SignatureError):
    message = N_("The signature of {path} by key {key_id} does not match its manifest")
    remedy = N_("The bundle was altered or damaged after signing; download it again.")


class UntrustedBundle(SignatureError):
    message = N_("The bundle {path} was opened without a trusted signature and cannot be used to flash")
    remedy = N_("Open the bundle with the station's trusted keys before flashing.")


# --- the images --------------------------------------------------------------------------------------


class ImageError(FirmwareError):
    message = N_("The image of partition {partition} is unusable: {detail}")


class ImageSizeMismatch(ImageError):
    message = N_("The image of partition {partition} is {actual} bytes; the manifest says {expected}")
    remedy = N_("The bundle is damaged or was altered; download it again.")


class ExpandedSizeMismatch(ImageSizeMismatch):
    message = N_("The image of partition {partition} expands to {actual} bytes; the manifest says {expected}")


class ImageHashMismatch(ImageError):
    message = N_("The image of partition {partition} does not match the SHA-256 in the manifest")
    remedy = N_("The bundle is damaged or was altered; download it again.")


class MalformedSparseImage(ImageError):
    message = N_("Malformed Android sparse image: {detail}")
    remedy = N_("Rebuild the image with a standard tool (img2simg) or pack it as a raw image.")


class MalformedSparsePartition(MalformedSparseImage):
    message = N_("The sparse image of partition {partition} is malformed: {detail}")


class MaxDownloadTooSmall(ImageError):
    message = N_("A download limit of {max_size} bytes is too small to carry blocks of {block_size} bytes")
    remedy = N_("Check the unit's max-download-size; it must hold at least one block plus headers.")


# --- compatibility with the unit ---------------------------------------------------------------------


class CompatibilityError(FirmwareError):
    message = N_("The bundle does not fit this unit: {detail}")


class ModelMismatch(CompatibilityError):
    message = N_("The bundle is for {models}, not for model {model}")
    remedy = N_("Pick the bundle released for this model.")


class HardwareRevisionMismatch(CompatibilityError):
    message = N_("The bundle supports revisions {revisions} of {model}, not revision {revision}")
    remedy = N_("Pick the bundle released for this hardware revision.")


class RollbackRefused(CompatibilityError):
    message = N_(
        "The bundle has security version {bundle_security_version}, older than the unit's {unit_security_version}"
    )
    remedy = N_("Anti-rollback forbids going back; use a bundle with an equal or newer security version.")


class UnknownPartition(CompatibilityError):
    message = N_("Model {model} has no partition named {partition}")
    remedy = N_("Check the partition names against the model table ('naiad models').")


class ImageTooLarge(CompatibilityError):
    message = N_("The image for {partition} expands to {size} bytes; the partition on {model} holds {capacity} bytes")
    remedy = N_(
        "'naiad models' lists each model's partition sizes: use the bundle released for this model, "
        "or rebuild the image to fit."
    )


class UnknownHardwareRevision(CompatibilityError):
    message = N_("Model {model} has no hardware revision {revision}; it has {revisions}")


# --- release keys and packing ------------------------------------------------------------------------


class ReleaseKeyError(FirmwareError):
    message = N_("The release key {path} is unusable: {detail}")


class KeyFileNotFound(ReleaseKeyError):
    message = N_("No key file at {path}")


class KeyFileExists(ReleaseKeyError):
    message = N_("{path} already exists; a release key is never overwritten")
    remedy = N_("Choose another directory, or move the old key away deliberately.")


class InvalidKeyFile(ReleaseKeyError):
    message = N_("{path} is not a usable key file: {detail}")
    remedy = N_("Release keys are Ed25519 or ECDSA P-256 in PEM; create one with 'naiad firmware keygen'.")


class SpecialKeyFile(InvalidKeyFile):
    message = N_("{path} is a directory, pipe or device, not a key file")
    remedy = N_("Give the path of the key file itself (release.key or release.pub).")


class PassphraseRequired(ReleaseKeyError):
    message = N_("The release key {path} is protected by a passphrase")
    remedy = N_("Enter the passphrase when asked, or set NAIAD_RELEASE_KEY_PASSPHRASE.")


class WrongPassphrase(ReleaseKeyError):
    message = N_("The passphrase does not open the release key {path}")


class PackError(FirmwareError):
    message = N_("Cannot pack the bundle: {detail}")


class InvalidPartitionSpec(PackError):
    message = N_("Not a partition image spec: {spec}")
    remedy = N_("Write NAME=FILE, for example boot=out/boot.img.")


class InvalidModelSpec(PackError):
    message = N_("Not a model spec: {spec}")
    remedy = N_("Write a model id, optionally with revisions: df2 or df2:A,B.")


class InvalidRelease(PackError):
    message = N_("Invalid release field {field}: {detail}")


class ImageNotFound(PackError):
    message = N_("No readable image file at {path}")


class OutputExists(PackError):
    message = N_("{path} already exists")
    remedy = N_("Choose another output name or pass --force to replace it.")


class ImageChanged(PackError):
    message = N_("The image {path} changed while it was being packed")
    remedy = N_("Wait until the build has finished writing the image, then pack again.")
