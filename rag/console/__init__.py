"""Console pages for a tenant's data plane: documents, usage, query log, playground."""
