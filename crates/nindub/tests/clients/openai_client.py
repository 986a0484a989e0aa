"""Talk to `nindub serve` with the official `openai` Python package.

Usage: python openai_client.py BASE_URL MODEL_ID [API_KEY] [EXPECTED_GREEDY_JSON]

BASE_URL is where the server listens, e.g. http://127.0.0.1:8080/. Pass ""
as API_KEY to give EXPECTED_GREEDY_JSON without a key. The checks:

  a. models.list() names MODEL_ID;
  b. completions.create with logprobs=3: text, finish_reason, usage, and
     logprobs that line up with the completion tokens;
  c. chat.completions.create with logprobs: message, logprobs, usage;
  d. the same chat streamed: the deltas join into the same text as (c),
     and the last chunk carries the usage;
  g. structured output: chat.completions.parse with a pydantic model
     (OpenAI's strict json_schema) returns a parsed object of that model,
     `{"type": "json_object"}` a JSON object, and a schema keyword the
     server cannot honour (`pattern`) a 400 that names it;
  e. with EXPECTED_GREEDY_JSON ({"prompt", "max_tokens", "text"}): a greedy
     completion returns exactly that text, the text `nindub generate
     --temperature 0` gave;
  f. errors: temperature -1 raises BadRequestError (400) naming the
     parameter; with API_KEY, a wrong key raises AuthenticationError.

One line per check is printed ("ok: ..."); the exit status is non-zero on
the first failure.
"""

import json
import sys

import openai

from checks import CheckFailed, check, ok


def check_models(client, model):
    ids = [m.id for m in client.models.list()]
    check(model in ids, f"models.list() gives {ids}, not {model!r}")
    ok(f"models.list(): {ids}")


def check_completion(client, model):
    response = client.completions.create(
        model=model, prompt="The capital of France is", max_tokens=12, temperature=0, logprobs=3
    )
    choice = response.choices[0]
    usage = response.usage
    check(isinstance(choice.text, str), f"completion text is {choice.text!r}")
    check(choice.finish_reason in ("stop", "length"), f"finish_reason is {choice.finish_reason!r}")
    check(usage is not None and usage.completion_tokens > 0, f"usage is {usage}")
    check(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, f"usage does not add up: {usage}")
    lp = choice.logprobs
    check(lp is not None, "no logprobs although logprobs=3 was asked")
    n = usage.completion_tokens
    check(len(lp.tokens) == n, f"{len(lp.tokens)} logprobs tokens for {n} completion tokens")
    check(len(lp.token_logprobs) == n, f"{len(lp.token_logprobs)} token_logprobs for {n} completion tokens")
    check(all(x <= 0 for x in lp.token_logprobs), f"a log-probability above 0: {lp.token_logprobs}")
    check(lp.top_logprobs is not None and len(lp.top_logprobs) == n, "top_logprobs missing or of the wrong length")
    check(all(len(top) <= 3 for top in lp.top_logprobs), f"more than 3 top_logprobs: {lp.top_logprobs}")
    ok(f"completions.create: {choice.text!r} ({n} tokens, {choice.finish_reason})")


def chat_params(model):
    return dict(
        model=model,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )


def check_chat(client, model):
    response = client.chat.completions.create(**chat_params(model))
    choice = response.choices[0]
    message = choice.message
    check(message.role == "assistant", f"message role is {message.role!r}")
    check(isinstance(message.content, str), f"message content is {message.content!r}")
    check(choice.finish_reason in ("stop", "length"), f"finish_reason is {choice.finish_reason!r}")
    usage = response.usage
    check(usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0, f"usage is {usage}")
    check(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, f"usage does not add up: {usage}")
    content = choice.logprobs.content if choice.logprobs else None
    check(content, "no logprobs.content although logprobs=True was asked")
    for item in content:
        check(isinstance(item.token, str) and item.logprob <= 0, f"bad logprob item {item}")
        check(len(item.top_logprobs) <= 2, f"more than 2 top_logprobs: {item.top_logprobs}")
    ok(f"chat.completions.create: {message.content!r} ({usage.completion_tokens} tokens, {choice.finish_reason})")
    return response


def check_chat_stream(client, model, plain):
    stream = client.chat.completions.create(
        **chat_params(model), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    check(chunks, "the stream gave no chunk")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    logprobs = [
        item for c in chunks if c.choices and c.choices[0].logprobs for item in c.choices[0].logprobs.content or []
    ]
    want = plain.choices[0]
    check(text == want.message.content, f"streamed text {text!r} differs from the plain answer {want.message.content!r}")
    check(finish == [want.finish_reason], f"streamed finish_reason {finish}, plain {want.finish_reason!r}")
    check(
        len(logprobs) == len(want.logprobs.content),
        f"{len(logprobs)} streamed logprobs, {len(want.logprobs.content)} in the plain answer",
    )
    last = chunks[-1]
    check(last.usage is not None, "the last chunk has no usage although include_usage was asked")
    check(last.choices == [], f"the usage chunk has choices: {last.choices}")
    check(last.usage == plain.usage, f"streamed usage {last.usage} differs from {plain.usage}")
    ok(f"streamed chat: {len(chunks)} chunks, same text as the plain answer, usage last")


def check_structured(client, model):
    from typing import Annotated

    from pydantic import BaseModel, Field

    # Bounded strings and lists bound the answer: at most 40 + 3 × 30
    # characters of text, so 256 tokens always hold the whole document.
    class Person(BaseModel):
        name: str = Field(max_length=40)
        born: int
        fields: list[Annotated[str, Field(max_length=30)]] = Field(max_length=3)

    messages = [{"role": "user", "content": "Describe Ada Lovelace as a JSON object."}]
    parsed = client.chat.completions.parse(
        model=model, messages=messages, response_format=Person, max_tokens=256, temperature=0
    )
    person = parsed.choices[0].message.parsed
    check(isinstance(person, Person), f"parse gave {person!r}")
    ok(f"chat.completions.parse with a pydantic model: {person!r}")

    plain = client.chat.completions.create(
        model=model, messages=messages, response_format={"type": "json_object"}, max_tokens=256, temperature=0
    )
    content = plain.choices[0].message.content
    check(isinstance(json.loads(content), dict), f"json_object gave {content!r}")
    ok(f"json_object: {content!r}")

    try:
        client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=8,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a+"}}},
        )
    except openai.BadRequestError as e:
        check("pattern" in e.message, f"the error does not name `pattern`: {e.message!r}")
        ok(f"a schema the server cannot honour is refused: {e.message}")
    else:
        raise CheckFailed("a schema with `pattern` was accepted")


def check_greedy(client, model, path):
    with open(path, encoding="utf-8") as f:
        expected = json.load(f)
    response = client.completions.create(
        model=model, prompt=expected["prompt"], max_tokens=expected["max_tokens"], temperature=0
    )
    text = response.choices[0].text
    check(
        text == expected["text"],
        f"greedy completion over HTTP differs from `nindub generate`:\n  got  {text!r}\n  want {expected['text']!r}",
    )
    ok(f"greedy completion equals `nindub generate --temperature 0`: {text!r}")


def check_errors(client, model, base_url, api_key):
    try:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi."}], max_tokens=4, temperature=-1
        )
    except openai.BadRequestError as e:
        check(e.status_code == 400, f"bad temperature gives status {e.status_code}")
        check("temperature" in e.message, f"the error does not name temperature: {e.message!r}")
        check(e.param in (None, "temperature"), f"the error's param is {e.param!r}")
        ok(f"temperature -1 refused: {e.message}")
    else:
        raise CheckFailed("temperature -1 was accepted")

    if not api_key:
        return
    wrong = openai.OpenAI(base_url=base_url, api_key=api_key + "-wrong", max_retries=0, timeout=60)
    try:
        wrong.models.list()
    except openai.AuthenticationError as e:
        ok(f"wrong API key refused ({e.status_code}): {e.message}")
    else:
        raise CheckFailed("a wrong API key was accepted")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    base, model = argv[1], argv[2]
    api_key = argv[3] if len(argv) > 3 and argv[3] else None
    greedy = argv[4] if len(argv) > 4 else None
    base_url = base.rstrip("/") + "/v1"
    client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", max_retries=0, timeout=120)
    try:
        check_models(client, model)
        check_completion(client, model)
        plain = check_chat(client, model)
        check_chat_stream(client, model, plain)
        check_structured(client, model)
        if greedy:
            check_greedy(client, model, greedy)
        check_errors(client, model, base_url, api_key)
    except CheckFailed as e:
        print(f"openai: FAIL: {e}", file=sys.stderr)
        return 1
    except openai.APIError as e:
        print(f"openai: FAIL: unexpected API error: {e!r}", file=sys.stderr)
        return 1
    print("openai: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
