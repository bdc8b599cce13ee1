"""Call the digits service as Paddle Serving's pipeline_http_client.py examples call theirs:
``{"key": [...], "value": [...]}`` posted with requests.

    python examples/paddle/pipeline_http_client.py [--url URL] [IMAGE ...]
"""

import argparse
import base64
import json

import requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:18082/digits/prediction")
    parser.add_argument("images", nargs="*", default=["examples/digits/sample.png"])
    args = parser.parse_args()
    for path in args.images:
        with open(path, "rb") as file:
            image = base64.b64encode(file.read()).decode("utf8")
        data = {"key": ["image"], "value": [image]}
        r = requests.post(url=args.url, data=json.dumps(data))
        result = r.json()
        print("erro_no:{}, err_msg:{}".format(result["err_no"], result["err_msg"]))
        if result["err_no"] == 0:
            print(dict(zip(result["key"], result["value"], strict=True)))


if __name__ == "__main__":
    main()
