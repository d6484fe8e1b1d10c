"""A stand-in for Amazon Bedrock Runtime (InvokeModel for embeddings, Converse, ConverseStream)
for local development and tests: deterministic outputs, SigV4 checks, quotas, faults, request log;
and STS (AssumeRole, AssumeRoleWithWebIdentity, GetCallerIdentity) issuing temporary credentials.
"""

from esproxy.bedrock_emulator.app import create_emulator_app, create_sts_app
from esproxy.bedrock_emulator.settings import EmulatorSettings

__all__ = ["EmulatorSettings", "create_emulator_app", "create_sts_app"]
