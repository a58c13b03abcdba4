"""What tests, bench and chaos share to stand in for AWS: never deployed.

- `faults`: call counting, throttling and faults in front of moto, the DynamoDB
  `TransactionConflict` moto never produces;
- `clocks`: virtual time for benches and the chaos replay (waits move it, not the wall);
- `streams`: workers writing progress rows and the stream records DynamoDB makes;
- `delivery`: Lambda's delivery rules, one copy for the local stack and chaos.
"""
