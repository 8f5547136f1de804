"""Wire contracts (pydantic models, JSON Schema) and the settings contract. Depends on nothing of ours."""
