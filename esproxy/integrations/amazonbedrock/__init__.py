"""The `amazonbedrock` integration: settings, model providers, and the Bedrock Runtime client."""
