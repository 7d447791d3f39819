//! `ctfix --explain`: what the control asks, why, what ctfix checks and writes, and how an
//! auditor sees it. Plain text for a terminal or a pull-request body.

/// The explanation of the control and of ctfix's fix.
pub const CONTROL: &str = "\
CloudTrail logs encrypted with a customer-managed KMS key

WHAT IT ASKS
  Every aws_cloudtrail sets kms_key_id to the ARN of a customer-managed KMS key whose key
  policy lets cloudtrail.amazonaws.com call kms:GenerateDataKey* and kms:DescribeKey.
  Known as: Checkov CKV_AWS_35, Trivy AWS-0015 (AVD-AWS-0015), KICS
  5d9e3164-9265-470c-9a10-57ae454ac0c7, AWS Security Hub CloudTrail.2, AWS Config
  CLOUD_TRAIL_ENCRYPTION_ENABLED, Prowler cloudtrail_kms_encryption_enabled.

WHY
  CloudTrail records every API call in the account: sign-ins, resource changes, privilege
  escalation. With the default SSE-S3 encryption, anyone who can read the bucket can read the
  logs. A customer-managed key adds a second, independent permission (kms:Decrypt on that key),
  lets you rotate the key and revoke access at once by disabling it, and makes every
  decryption of the logs an event in CloudTrail itself.

PITFALLS
  - A key whose policy does not grant CloudTrail kms:GenerateDataKey* and kms:DescribeKey:
    trail creation fails (InsufficientEncryptionPolicyException) or delivery stops.
  - An AWS-managed key (alias/aws/...) does not count: you cannot change its policy or
    rotation.
  - KMS keys are regional: the key must live in the trail's home region; consolidating logs
    into a bucket in another region needs matching key and bucket policies.
  - Scheduling the key for deletion makes every log it encrypted unreadable for good once the
    waiting period ends.
  - Only new deliveries use the key; existing log files keep their old encryption.

WHAT CTFIX WRITES
  kms_key_id = aws_kms_key.<trail>_cloudtrail.arn, and that key right after the trail:
  rotation on, a 30-day deletion window, and a policy that lets the account administer the
  key, lets CloudTrail encrypt for this account's trails (encryption-context condition) and
  only for this trail (aws:SourceArn), and lets CloudTrail describe the key. The policy lets
  nobody decrypt by itself: its account statement delegates to IAM, so whoever reads the
  logs (SIEM, Athena, auditors) needs an IAM policy granting kms:Decrypt on the key. The
  trail's ARN is built from its name, so there is no dependency cycle. The key copies the
  trail's provider, count and for_each.

AUDIT EVIDENCE
  `aws cloudtrail describe-trails` shows KmsKeyId set to the key's ARN on every trail;
  `aws kms describe-key` shows it Enabled (not PendingDeletion); the key policy shows the
  cloudtrail.amazonaws.com grants; CloudTrail event history shows GenerateDataKey calls
  against the key as logs are delivered. AWS Config's cloud-trail-encryption-enabled rule
  gives continuous evidence.

FRAMEWORKS
  SOC 2 (confidentiality and security criteria), PCI DSS v4.0 10.3.1 and 3.5 (key
  management), HIPAA Security Rule (encryption of ePHI-adjacent logs), GDPR Art. 32, NIST SP
  800-53 Rev 5 SC-28 and AU-9, NIST CSF 2.0 PR.DS and DE.AE, FedRAMP Moderate SC-28 (KMS uses
  FIPS 140-validated modules).
";

#[cfg(test)]
mod tests {
    #[test]
    fn names_every_tool_id() {
        for id in [
            "CKV_AWS_35",
            "AWS-0015",
            "5d9e3164-9265-470c-9a10-57ae454ac0c7",
            "CloudTrail.2",
            "CLOUD_TRAIL_ENCRYPTION_ENABLED",
            "cloudtrail_kms_encryption_enabled",
        ] {
            assert!(super::CONTROL.contains(id), "{id}");
        }
    }

    #[test]
    fn says_readers_need_iam_for_decrypt() {
        let writes = super::CONTROL
            .split("WHAT CTFIX WRITES")
            .nth(1)
            .and_then(|rest| rest.split("AUDIT EVIDENCE").next())
            .unwrap();
        assert!(
            writes.contains("IAM policy granting kms:Decrypt"),
            "{writes}"
        );
        assert!(!writes.contains("principals"), "{writes}");
    }
}
