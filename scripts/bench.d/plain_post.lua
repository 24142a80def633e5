-- The same POST without a key: the baseline through nginx and straight to the origin.
local body = '{"amount":2599,"currency":"eur","customer":"cus_8e03978e40d5","description":"order 1042"}'
request = function()
  return wrk.format("POST", "/v1/payments", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer sk_test_bench",
  }, body)
end
