package runner

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Clients are the EC2 and SSM clients of cfg; endpoint "" is AWS's, else
// one URL for both (a test fake, a VPC endpoint proxy).
func Clients(cfg aws.Config, endpoint string) (*ec2.Client, *ssm.Client) {
	e := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	s := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return e, s
}
