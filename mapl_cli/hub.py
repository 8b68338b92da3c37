"""The Hugging Face hub: asked at most once per process whether it answers, never waited on, and used by
`--push-to-hub`.

    mapl evaluate --benchmark hf://google/IFEval --model HuggingFaceTB/SmolLM2-360M-Instruct --output out/eval
    mapl train-dpo pairs.parquet --output out/dpo --push-to-hub my-org/smollm2-mapl-dpo

With no network, huggingface_hub retries every request with back-off, so a hub id or an `hf://` input took
20 to 55 s to fail. `use_hub()` runs before one is looked up: one request to the endpoint (`HF_ENDPOINT`,
through the proxies huggingface_hub itself uses) with a 2 s limit. When it gets no answer the process goes
offline (`HF_HUB_OFFLINE=1`, as if the user had set it): what is in the local cache still loads, anything
else fails at once with the caller's own one-line message. `check_push` runs before a training run loads
anything, `push_folder` after it has written its model.

A shared layer: it imports no stage and no command, and huggingface_hub only inside functions.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mapl_cli.errors import MaplError

PROBE_SECONDS = 2.0  # how long the endpoint has to answer before the process goes offline
WHOAMI_SECONDS = 10.0  # the token check before training (a slow answer is still an answer)
_probed: dict[str, bool] = {}  # endpoint -> whether it answered, once per process


def endpoint() -> str:
    """The hub's address: `HF_ENDPOINT` (a mirror, a private hub) or https://huggingface.co."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def offline() -> bool:
    """Whether hub access is switched off (`HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE`, or by `use_hub`)."""
    from huggingface_hub import constants

    flags = (os.environ.get(name, "").upper() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(flag in constants.ENV_VARS_TRUE_VALUES for flag in flags)


def _within(seconds: float, fn: Callable[[], Any]) -> tuple[bool, Any]:
    """(finished, result or exception) of `fn` run in a daemon thread for at most `seconds`. A thread, because
    no request timeout covers the name lookup, which can hang far longer on a network that drops packets."""
    box: list = []

    def target():
        try:
            box.append(fn())
        except Exception as err:  # noqa: BLE001 - handed to the caller, which decides
            box.append(err)

    thread = threading.Thread(target=target, name="mapl-hub-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    return (bool(box), box[0] if box else None)


def reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Whether the hub endpoint gives any HTTP answer within `timeout` seconds (asked once per process)."""
    url = endpoint()
    if url not in _probed:
        from huggingface_hub.utils import get_session

        finished, result = _within(timeout, lambda: get_session().head(url, timeout=timeout))
        _probed[url] = finished and not isinstance(result, Exception)
    return _probed[url]


def go_offline() -> None:
    """Switch hub access off for the rest of this process and its children, as `HF_HUB_OFFLINE=1` does.
    huggingface_hub (which transformers asks) and datasets read the variable once, at import, so a module
    already imported has its flag set too."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    config = sys.modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = config.HF_DATASETS_OFFLINE = True


def use_hub() -> None:
    """Call before a hub id or an `hf://` input is looked up: when the hub does not answer within
    `PROBE_SECONDS`, go offline, so the lookup is served from the local cache or fails at once. Already
    offline by the environment: make sure every library already imported agrees."""
    if offline() or not reachable():
        go_offline()


def _api():
    """huggingface_hub's client (tests put a stand-in here: there is no hub in them)."""
    from huggingface_hub import HfApi

    return HfApi()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def check_push(repo_id: str) -> str:
    """Before training: `repo_id` is a valid repo id, hub access is on, a token exists, the hub answers and
    accepts the token (and it is not read-only). One line otherwise; returns the account's name."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    where = f"--push-to-hub {repo_id}"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise MaplError(f"{where}: not a hub repo id ({_first_line(err)})") from None
    if offline():
        raise MaplError(f"{where}: hub access is off (HF_HUB_OFFLINE is set); unset it, or train without "
                        "--push-to-hub and upload OUTPUT/model later with `hf upload`")
    token = get_token()
    if not token:
        raise MaplError(f"{where}: no Hugging Face token; set HF_TOKEN or run `hf auth login` (a write token)")
    if not reachable():
        raise MaplError(f"{where}: the hub ({endpoint()}) did not answer within {PROBE_SECONDS:g} s; "
                        "train without --push-to-hub and upload OUTPUT/model later with `hf upload`")
    finished, result = _within(WHOAMI_SECONDS, lambda: _api().whoami(token=token))
    if not finished:
        raise MaplError(f"{where}: the hub ({endpoint()}) did not confirm the token within {WHOAMI_SECONDS:g} s")
    if isinstance(result, Exception):
        raise MaplError(f"{where}: the hub did not accept the token ({_first_line(result)})")
    role = ((result.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise MaplError(f"{where}: the token is read-only; use a token with write access")
    return str(result.get("name") or "")


def push_folder(folder: str | Path, repo_id: str, message: str) -> str:
    """Create `repo_id` (a model repo, kept if it exists) and upload `folder` to it in one commit; returns
    the repo's URL. A failure is one line saying how to upload the folder by hand."""
    api = _api()
    try:
        url = api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder), commit_message=message)
    except Exception as err:  # noqa: BLE001 - network, permission, quota: the model is safe on disk either way
        raise MaplError(f"--push-to-hub {repo_id}: the upload failed ({_first_line(err)}); the model is in "
                        f"{folder}: upload it with `hf upload {repo_id} {folder}`, or run the same command again with "
                       "--resume") from None
    return str(url)
