"""The AWS edge: the only package that imports boto3 / botocore (inside its functions)."""
