"""Code sets (ICD-10-CM, ICD-10-PCS, HCPCS, customer-loaded CPT) and code validation."""
