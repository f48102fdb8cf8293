"""Live cloud prices: AWS Pricing and spot history, GCP Cloud Billing Catalog, Azure Retail Prices."""
