"""The user document's two endpoint bodies, exactly as written there, and request headers."""

TITAN_EMBEDDINGS = {
    "service": "amazonbedrock",
    "service_settings": {
        "access_key": "<aws_access_key>",
        "secret_key": "<aws_secret_key>",
        "region": "us-east-1",
        "provider": "amazontitan",
        "model": "amazon.titan-embed-text-v2:0",
    },
}
TITAN_COMPLETION = {
    "service": "amazonbedrock",
    "service_settings": {
        "access_key": "<aws_access_key>",
        "secret_key": "<aws_secret_key>",
        "region": "us-east-1",
        "provider": "amazontitan",
        "model": "amazon.titan-text-premier-v1:0",
    },
}
JSON_HEADERS = {"Content-Type": "application/json"}
