//! Evaluating KMS key policies (IAM policy JSON) for a request: does this policy let
//! CloudTrail use the key, and can the account still administer it?
