"""The `openai` backend: any OpenAI-compatible chat completions endpoint.

This covers the OpenAI API itself, vLLM and llama.cpp servers, and the
OpenAI-compatible endpoints of other vendors. Requests run concurrently under
asyncio, up to `concurrency` at a time. A request that fails with HTTP 429,
a 5xx status, a timeout or a dropped connection is retried with exponential
backoff and jitter, and a Retry-After header sets the least wait. Every
finished request is saved in the job's checkpoint at once, so a killed job
sends no finished request again. A job that runs past its time budget stops
with its checkpoint intact.

The API key is read from the environment variable named by `api_key_env`. It
goes into the Authorization header only: it never appears in rows, logs,
error messages, rule params or the checkpoint fingerprint.
"""

import asyncio
import email.utils
import json
import logging
import os
import random
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
import pandas as pd

from xlsafety.backends import missing_key_message
from xlsafety.errors import ConfigError, ModelError
from xlsafety.generate import generations_frame, resumed_rows, row_seed
from xlsafety.language_check import repair_text

log = logging.getLogger(__name__)

# Rate limits, request timeouts (408) and server errors are usually transient, so they are retried.
# Other 4xx statuses are not.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# Maximum wait between two attempts from the exponential backoff alone.
MAX_BACKOFF_S = 60.0

BACKEND = "openai"


class EndpointError(ModelError):
    """An API endpoint refused a request or kept failing after every retry."""


class TimeBudgetError(EndpointError):
    """A generation job ran past its time budget."""


@dataclass(frozen=True)
class OpenAIChatConfig:
    """The endpoint settings of one model under `models:` with `backend: openai`."""

    model_key: str
    """The model's key under `models:`, named in error messages."""

    model: str
    """The model name the endpoint expects in the request's `model` field."""

    base_url: str
    """The API root up to and including its version, such as `https://api.openai.com/v1`."""

    api_key_env: str | None = None
    """The environment variable that contains the API key. None sends no key, for a local server."""

    concurrency: int = 4
    """Requests in flight at once in one job."""

    max_retries: int = 6
    """Retries of one request after a 429, a 5xx status, a timeout or a connection error."""

    timeout_s: float = 120.0
    """Seconds to wait for one response before the attempt counts as timed out."""

    time_budget_s: float = 21600.0
    """Seconds one job may take in all; past that it stops and keeps its checkpoint."""

    retry_backoff_s: float = 1.0
    """Wait before the first retry. It doubles with each further retry up to 60 s, with jitter."""

    @classmethod
    def from_settings(cls, model_key: str, settings: dict) -> "OpenAIChatConfig":
        """Build the config from a model's entry in the workflow config."""
        return cls(
            model_key=model_key,
            model=settings["model"],
            base_url=settings["base_url"],
            api_key_env=settings.get("api_key_env"),
            concurrency=int(settings.get("concurrency", cls.concurrency)),
            max_retries=int(settings.get("max_retries", cls.max_retries)),
            timeout_s=float(settings.get("timeout_s", cls.timeout_s)),
            time_budget_s=float(settings.get("time_budget_s", cls.time_budget_s)),
            retry_backoff_s=float(settings.get("retry_backoff_s", cls.retry_backoff_s)),
        )

    @property
    def model_identity(self) -> str:
        """The endpoint and model name, recorded with every row. It contains no key."""
        return json.dumps({"base_url": self.base_url.rstrip("/"), "model": self.model}, sort_keys=True)

    def api_key(self) -> str | None:
        """Read the API key from the environment, or return None when no variable is configured."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(missing_key_message(self.model_key, self.api_key_env))
        return key


@dataclass(frozen=True)
class ChatRequest:
    """One (prompt, pass) request and the messages it sends."""

    prompt_id: int
    pass_index: int
    seed: int
    messages: tuple[tuple[str, str], ...]

    @property
    def message_list(self) -> list[dict]:
        return [{"role": role, "content": content} for role, content in self.messages]

    @property
    def prompt_sent(self) -> str:
        """The messages as JSON, recorded as the exact prompt that was sent."""
        return json.dumps(self.message_list, ensure_ascii=False)


def chat_messages(text: str, system_prompt: str | None) -> tuple[tuple[str, str], ...]:
    """Return the (role, content) messages for one prompt, with the system prompt first if any."""
    user = (("user", text),)
    return (("system", system_prompt),) + user if system_prompt else user


class OpenAIChatBackend:
    """Generates through one OpenAI-compatible endpoint."""

    def __init__(self, config: OpenAIChatConfig):
        self.config = config
        self.model_identity = config.model_identity
        self._api_key = config.api_key()
        # The event loop's time at which the running job's time budget ends.
        self._deadline = float("inf")

    def generate(self, prompts: pd.DataFrame, job) -> pd.DataFrame:
        """Generate every (prompt, pass) of `job` in the language of `prompts`.

        Rows saved in the job's checkpoint by an earlier attempt are reused,
        and only the other requests are sent.
        """
        if job.prompt_format.kind != "chat":
            raise ConfigError(
                f"config key models.{self.config.model_key}.prompt_format: the openai backend "
                f"sends chat messages, so set prompt_format: chat instead of {job.prompt_format.kind!r}"
            )
        language = prompts["language"].iloc[0] if len(prompts) else ""
        requests = _requests(prompts, job, language)

        expected = {(request.prompt_id, request.pass_index): (request.seed, request.prompt_sent)
                    for request in requests}
        rows = resumed_rows(job.checkpoint, expected)
        done = {(row["id"], row["pass"]) for row in rows}
        pending = [request for request in requests if (request.prompt_id, request.pass_index) not in done]
        log.info("%s %s: %d requests, %d already done, sending %d to %s", job.configuration, language,
                 len(requests), len(done), len(pending), self.config.base_url)

        rows.extend(asyncio.run(self._send_all(pending, job, len(requests) - len(pending))))
        return generations_frame(
            rows, configuration=job.configuration, model_name=job.model_name, decoding=job.decoding,
            language=language, prompt_format="chat", backend=BACKEND, model_identity=self.model_identity,
        )

    async def _send_all(self, pending: list[ChatRequest], job, already_done: int) -> list[dict]:
        """Send the pending requests, saving each group of finished rows as it completes."""
        finished: list[dict] = []
        budget = asyncio.timeout(self.config.time_budget_s)
        try:
            async with budget, self._client() as client:
                self._deadline = budget.when()
                await self._complete_all(client, pending, job, finished)
        except TimeoutError:
            if not budget.expired():
                raise
            raise TimeBudgetError(self._budget_message(job, already_done + len(finished),
                                                       already_done + len(pending))) from None
        return finished

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        return httpx.AsyncClient(
            base_url=self.config.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.config.timeout_s),
            limits=httpx.Limits(max_connections=self.config.concurrency),
        )

    async def _complete_all(self, client, pending: list[ChatRequest], job, finished: list[dict]) -> None:
        semaphore = asyncio.Semaphore(self.config.concurrency)
        tasks = {asyncio.create_task(self._complete(client, semaphore, request, job)) for request in pending}
        try:
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)

                # Save the finished rows before raising any failure, so that no completed response is lost.
                rows = [task.result() for task in done if task.exception() is None]
                if rows and job.checkpoint is not None:
                    job.checkpoint.append(rows)
                finished.extend(rows)

                failures = [task.exception() for task in done if task.exception() is not None]
                if failures:
                    raise failures[0]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _complete(self, client, semaphore: asyncio.Semaphore, request: ChatRequest, job) -> dict:
        # The slot is held through backoff waits too, so a rate-limited endpoint never
        # receives more than `concurrency` requests of this job at once.
        async with semaphore:
            payload = await self._post_with_retries(client, _body(self.config.model, request, job), request)
        return self._row(request, payload)

    async def _post_with_retries(self, client, body: dict, request: ChatRequest) -> dict:
        """POST one request, retrying on rate limits, server errors, timeouts and dropped connections."""
        for attempt in range(self.config.max_retries + 1):
            retry_after = None
            try:
                response = await client.post("chat/completions", json=body)
            except httpx.TimeoutException:
                problem = f"no response within timeout_s={self.config.timeout_s:g}"
            except httpx.TransportError as error:
                problem = f"connection error ({type(error).__name__})"
            else:
                if response.status_code == 200:
                    return self._payload(response, request)
                if response.status_code not in RETRYABLE_STATUSES:
                    raise self._rejected(response)
                problem = f"HTTP {response.status_code}"
                retry_after = retry_after_seconds(response.headers)

            if attempt == self.config.max_retries:
                raise EndpointError(self._gave_up_message(request, problem))
            wait = self._backoff(attempt, retry_after)
            left = self._deadline - asyncio.get_running_loop().time()
            if retry_after is not None and retry_after > left:
                # Waiting as long as the endpoint requests would only use up the time budget, so the job stops now.
                raise EndpointError(self._wait_too_long_message(request, problem, retry_after, left))
            log.warning("%s: %s for prompt %d pass %d; retry %d of %d in %.2f s", self.config.model_key,
                        problem, request.prompt_id, request.pass_index, attempt + 1,
                        self.config.max_retries, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # Full-range jitter keeps concurrent requests that failed together from retrying together.
        delay = min(MAX_BACKOFF_S, self.config.retry_backoff_s * 2**attempt)
        jittered = delay * random.uniform(0.5, 1.0)
        return max(jittered, retry_after) if retry_after is not None else jittered

    def _payload(self, response: httpx.Response, request: ChatRequest) -> dict:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        problem = completion_problem(payload)
        if problem is not None:
            # Checked before the row is saved, so a malformed response never reaches the checkpoint.
            raise EndpointError(
                f"model {self.config.model_key}: the endpoint answered prompt {request.prompt_id} pass "
                f"{request.pass_index} with {problem} ({self._excerpt(response)}); check that "
                f"base_url {self.config.base_url!r} is an OpenAI-compatible API root such as .../v1"
            )
        return payload

    def _row(self, request: ChatRequest, payload: dict) -> dict:
        choice = payload["choices"][0]
        message = choice["message"] or {}
        usage = payload.get("usage") or {}
        # Some OpenAI models put a refusal in `refusal` and leave `content` empty.
        # A safety study counts that refusal as the response text. A JSON escape can
        # decode to a lone surrogate, which the checkpoint and parquet cannot store.
        text = repair_text(message.get("content") or message.get("refusal") or "")
        return {
            "id": request.prompt_id,
            "pass": request.pass_index,
            "seed": request.seed,
            "prompt_sent": request.prompt_sent,
            "text": text,
            "finish_reason": choice.get("finish_reason"),
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
        }

    def _rejected(self, response: httpx.Response) -> EndpointError:
        key = self.config.model_key
        if response.status_code in (401, 403):
            where = f"the variable {self.config.api_key_env!r}" if self.config.api_key_env else "no variable"
            return EndpointError(
                f"model {key}: the endpoint rejected the API key (HTTP {response.status_code}: "
                f"{self._excerpt(response)}). The key comes from {where} (models.{key}.api_key_env); "
                f"check that it contains a valid key for {self.config.base_url}"
            )
        return EndpointError(
            f"model {key}: the endpoint rejected the request (HTTP {response.status_code}: "
            f"{self._excerpt(response)}); check models.{key}.model ({self.config.model!r}) and base_url"
        )

    def _excerpt(self, response: httpx.Response) -> str:
        """Return the start of a response body, with the API key blanked if the endpoint echoed it."""
        text = response.text[:300].strip() or "empty body"
        return text.replace(self._api_key, "***") if self._api_key else text

    def _gave_up_message(self, request: ChatRequest, problem: str) -> str:
        key = self.config.model_key
        return (
            f"model {key}: prompt {request.prompt_id} pass {request.pass_index} failed "
            f"{self.config.max_retries + 1} times, last with {problem}. Check that the endpoint "
            f"{self.config.base_url} is up, or raise models.{key}.max_retries or timeout_s. "
            "Finished rows are kept in the checkpoint, so a rerun continues from there."
        )

    def _wait_too_long_message(self, request: ChatRequest, problem: str, wait: float, left: float) -> str:
        key = self.config.model_key
        return (
            f"model {key}: after {problem} for prompt {request.prompt_id} pass {request.pass_index}, the "
            f"endpoint asked to wait {wait:.0f} s before retrying, more than the {max(left, 0):.0f} s left of "
            f"the time budget (models.{key}.time_budget_s). Finished rows are kept in the checkpoint; rerun "
            "the workflow once the endpoint accepts requests again, or raise time_budget_s."
        )

    def _budget_message(self, job, finished: int, total: int) -> str:
        key = self.config.model_key
        where = f" are saved in {job.checkpoint.folder}" if job.checkpoint is not None else " are not saved"
        return (
            f"model {key}: the time budget of {self.config.time_budget_s:g} s "
            f"(models.{key}.time_budget_s) ran out with {finished} of {total} requests of "
            f"{job.configuration} finished. The finished rows{where}; rerun the workflow to "
            "continue from there, or raise time_budget_s or concurrency."
        )


def completion_problem(payload) -> str | None:
    """Return what makes `payload` something other than a chat completion, or None when it is one."""
    if not isinstance(payload, dict):
        return "no chat completion"
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "no chat completion"
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        return f"a choice whose message is {type(message).__name__}, not an object"
    for field in ("content", "refusal"):
        if message.get(field) is not None and not isinstance(message[field], str):
            return f"a message whose {field} is {type(message[field]).__name__}, not a string"
    if choice.get("finish_reason") is not None and not isinstance(choice["finish_reason"], str):
        return "a finish_reason that is not a string"
    return _usage_problem(payload.get("usage"))


def _usage_problem(usage) -> str | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "a usage field that is not an object"
    for field in ("prompt_tokens", "completion_tokens"):
        count = usage.get(field)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            return f"usage.{field} {count!r}, not a count of tokens"
    return None


def _requests(prompts: pd.DataFrame, job, language: str) -> list[ChatRequest]:
    requests = []
    for prompt_id, text in zip(prompts["id"], prompts["text"]):
        messages = chat_messages(text, job.decoding.system_prompt)
        for pass_index in range(job.decoding.passes):
            seed = row_seed(job.study_seed, job.configuration, language, int(prompt_id), pass_index)
            requests.append(ChatRequest(int(prompt_id), pass_index, seed, messages))
    return requests


def _body(model: str, request: ChatRequest, job) -> dict:
    """Return the JSON body of one chat completions request."""
    body = {
        "model": model,
        "messages": request.message_list,
        "temperature": job.decoding.temperature,
        "top_p": job.decoding.top_p,
        "max_tokens": job.decoding.max_new_tokens,
        # Endpoints that support `seed` sample reproducibly per row, and others ignore it.
        "seed": request.seed,
    }
    if job.prompt_format.stop_strings:
        body["stop"] = list(job.prompt_format.stop_strings)
    return body


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Return the wait in seconds that a Retry-After (or OpenAI's retry-after-ms) header requests, if any."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            log.debug("ignoring retry-after-ms header %r", milliseconds)

    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return _seconds_until(value)


def _seconds_until(http_date: str) -> float | None:
    # Retry-After may also be an HTTP date instead of a number of seconds.
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        log.debug("ignoring unreadable Retry-After header %r", http_date)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
