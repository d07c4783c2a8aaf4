// Nix reads a binary cache anonymously: on Ceph RGW (private buckets) a bucket policy lets anyone GET its objects.
import { PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { createS3Client } from '../../lib/s3/store.ts';
import type { TestRgw } from './rgw.ts';

export async function allowAnonymousRead(rgw: TestRgw, bucket: string): Promise<void> {
  const client = createS3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, rgw.users.admin);
  await client.send(new PutBucketPolicyCommand({
    Bucket: bucket,
    Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/*`] }] }),
  }));
}
