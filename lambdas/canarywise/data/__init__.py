"""Data access: the only code that talks to AWS (DynamoDB, CloudWatch, ELBv2, Step Functions, SNS).

Every class takes an optional ``boto3_client`` so tests can hand in a fake, and returns domain models
(`canarywise.data.models`), never raw response dictionaries.
"""
