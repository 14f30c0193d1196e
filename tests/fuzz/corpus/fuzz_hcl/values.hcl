s = "a\n\t\"\\\/\u00e9\ud83d\ude00\U0001F600"
n = [0, -42, 3.25, 1e3, 9223372036854775808, null, true, false]
o = { k = 1, "*" = [] k3 = "v"
  nested = [{a = 1}, [[]]] }
a "b" "c" { x = 1 }
h = <<-EOT
    indented
      more
    EOT
/* c */ // c
# c
