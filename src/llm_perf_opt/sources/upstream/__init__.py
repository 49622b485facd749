"""Upstream model sources: Hugging Face snapshots and Hub revisions of DeepSeek-OCR v1 remote code.

* :mod:`.snapshot` reads and hashes a snapshot folder (config and ``*.py`` only; weights never read);
  :mod:`.hub` fetches ``config.json`` and ``*.py`` of ``hf:REPO@REVISION`` into a cache, revision -> commit.
* :mod:`.trust` refuses to run remote code without ``--trust-remote-code`` (listing files and sha256).
* :mod:`.compat` checks the installed transformers against what the code imports; :mod:`.loader` imports the code
  from the hashed bytes and builds the tree on meta.
* :mod:`.adapters` (+ :mod:`.moe_dispatch`, :mod:`.cache`) make upstream's data-dependent spots traceable on meta,
  only while a pass runs; :mod:`.driver` runs prefill and decode steps; :mod:`.source` is the model source.
* :mod:`.golden` and :mod:`.equivalence` compare traces (drift checks, built-in vs upstream).
"""

from llm_perf_opt.sources.upstream.records import AdapterRecord, UpstreamProvenance

__all__ = ["AdapterRecord", "UpstreamProvenance"]
