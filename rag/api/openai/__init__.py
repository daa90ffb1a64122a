"""OpenAI-compatible endpoints under /v1/, authenticated with the tenant's API key.

The official OpenAI clients work against them unchanged (`base_url=".../v1"`): chat
completions are answers grounded in the tenant's documents, embeddings come from the same
model as retrieval. Errors take OpenAI's `{"error": {...}}` shape here, not problem+json.
"""
