"""Trust gating: remote code runs only when the caller said ``--trust-remote-code``.

Without it the refusal lists every file that would run, with its sha256, so a person can compare the hashes with
a reviewed revision (``third_party/<repo>/<revision>/code_hashes.json``) before allowing it.
"""

from __future__ import annotations

from llm_perf_opt.errors import TrustError
from llm_perf_opt.sources.upstream.snapshot import Snapshot

__all__ = ["TRUST_FLAG", "require_trust", "trust_message"]

TRUST_FLAG = "--trust-remote-code"


def trust_message(snapshot: Snapshot) -> str:
    """One line: what would run (files and hashes), and how to allow it."""
    files = snapshot.listing() or "(no *.py files)"
    return (
        f"model source {snapshot.source} executes remote code and it was not trusted; files that would run: "
        f"{files}; compare the hashes with a reviewed revision, then rerun with {TRUST_FLAG} to allow it"
    )


def require_trust(snapshot: Snapshot, *, trust_remote_code: bool) -> None:
    """Raise :class:`TrustError` (listing files and sha256) unless ``trust_remote_code`` is true."""
    if not trust_remote_code:
        raise TrustError(trust_message(snapshot))
