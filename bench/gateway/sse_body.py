"""The streamed body of bench/gateway.sh's masking comparison: a chat completion as Server-Sent
Events, the way an LLM API streams one (one `chat.completion.chunk` per token or two), 96 events,
about 18 KB. Every 16th event's text holds something a built-in detector masks (an email, a
Luhn-valid card number, an AWS access key id), so the masking route does real replacements, as
in a response that quotes personal data; the rest is ordinary text the masker must still scan.

`python3 sse_body.py OUT` writes the body to OUT. Standard library only.
"""

import json
import sys

WORDS = "the gateway streams every token as it arrives and masks what must not leave".split()
SENSITIVE = [
    "contact jane.doe@example.com for access",
    "card 4111 1111 1111 1111 on file",
    "key AKIAIOSFODNN7EXAMPLE was rotated",
]


def main():
    events = []
    for i in range(96):
        if i % 16 == 8:
            text = " " + SENSITIVE[(i // 16) % len(SENSITIVE)]
        else:
            text = " " + WORDS[i % len(WORDS)] + " " + WORDS[(i * 7) % len(WORDS)]
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
        events.append("data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n")
    events.append("data: [DONE]\n\n")
    with open(sys.argv[1], "w") as out:
        out.write("".join(events))


if __name__ == "__main__":
    main()
