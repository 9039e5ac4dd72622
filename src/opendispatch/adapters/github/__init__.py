"""GitHub: per-job repository tokens from a GitHub App (issue #24)."""

from .app_tokens import GitHubAppTokens, load_app_key
from .settings import GitHubAppSettings

__all__ = ["GitHubAppSettings", "GitHubAppTokens", "load_app_key"]
