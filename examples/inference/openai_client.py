"""Stream a completion and a chat answer from the tiny-lm InferenceService with the
official `openai` client (see generative.yaml), through the platform's gateway.

    python examples/inference/openai_client.py [--url http://127.0.0.1:8080]

The equivalent with curl:

    curl -N http://127.0.0.1:8080/openai/v1/chat/completions \\
      -H 'Host: tiny-lm.default.127.0.0.1.sslip.io' -H 'content-type: application/json' \\
      -d '{"model": "tiny-lm", "messages": [{"role": "user", "content": "hello"}],
           "max_tokens": 20, "stream": true}'
"""

from __future__ import annotations

import argparse

from openai import OpenAI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")
    parser.add_argument("--host", default="tiny-lm.default.127.0.0.1.sslip.io")
    args = parser.parse_args()
    client = OpenAI(
        base_url=args.url + "/openai/v1", api_key="unused", default_headers={"Host": args.host}
    )
    print("models:", [m.id for m in client.models.list()])
    stream = client.completions.create(
        model="tiny-lm", prompt="the cat sat on", max_tokens=20, stream=True
    )
    for chunk in stream:
        print(chunk.choices[0].text, end="", flush=True)
    print()
    chat = client.chat.completions.create(
        model="tiny-lm",
        messages=[{"role": "user", "content": "how are you ?"}],
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in chat:
        if chunk.choices:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
        elif chunk.usage:
            print(f"\n{chunk.usage.completion_tokens} tokens")


if __name__ == "__main__":
    main()
