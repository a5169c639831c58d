using System.Text;
using MaeMl.Interop;
using Xunit;

namespace MaeMl.Tests.Interop;

/// <summary>The opcode pre-scan on its own: what it lets through and what it refuses.</summary>
public class SafePickleValidatorTests
{
    static byte[] Bytes(params object[] parts) =>
        parts.SelectMany(p => p switch { string s => Encoding.Latin1.GetBytes(s), byte b => new[] { b }, byte[] a => a, int i => new[] { (byte)i }, _ => throw new ArgumentException() }).ToArray();

    [Fact]
    public void AllowsTheContainersTorchSaveWrites()
    {
        // protocol 0 GLOBAL + REDUCE of OrderedDict, a memoised STACK_GLOBAL of a storage type
        var p = Bytes(0x80, 4, "ccollections\nOrderedDict\n)R", 0x8c, 5, "torch", 0x94, 0x8c, 12, "FloatStorage", 0x94, 0x93, "0.");
        Assert.Equal(new[] { "collections.OrderedDict", "torch.FloatStorage" }, SafePickleValidator.Validate(p, "ok.pkl").Order(StringComparer.Ordinal));
        // STACK_GLOBAL whose strings come back from the memo
        p = Bytes(0x80, 4, 0x8c, 5, "torch", 0x94, 0x8c, 11, "LongStorage", 0x94, "0", "0", "h", 0, "h", 1, 0x93, ".");
        Assert.Equal(new[] { "torch.LongStorage" }, SafePickleValidator.Validate(p, "memo.pkl"));
    }

    [Theory]
    [InlineData("cposix\nsystem\n", "posix.system")]
    [InlineData("csubprocess\nPopen\n", "subprocess.Popen")]
    [InlineData("ctorch\nload\n", "torch.load")]
    [InlineData("ibuiltins\nexec\n", "builtins.exec")]   // INST
    public void RefusesEveryOtherGlobal(string opcode, string global)
    {
        var ex = Assert.Throws<UnsafePickleException>(() => SafePickleValidator.Validate(Bytes(0x80, 2, "(", opcode, "."), "bad.pkl"));
        Assert.Contains($"'{global}'", ex.Message);
        Assert.Contains("bad.pkl", ex.Message);
    }

    [Fact]
    public void RefusesWhatItCannotCheck()
    {
        // STACK_GLOBAL on a computed (non-literal) value, the extension registry, a pickle without STOP, an unknown opcode
        Assert.Contains("cannot check", Assert.Throws<UnsafePickleException>(() => SafePickleValidator.Validate(Bytes(0x80, 4, "N", "N", 0x93, "."), "f")).Message);
        Assert.Contains("extension registry", Assert.Throws<UnsafePickleException>(() => SafePickleValidator.Validate(Bytes(0x80, 2, 0x82, 1, "."), "f")).Message);
        Assert.Contains("no STOP", Assert.Throws<UnsafePickleException>(() => SafePickleValidator.Validate(Bytes(0x80, 2, "}"), "f")).Message);
        Assert.Contains("unknown opcode 0xff", Assert.Throws<UnsafePickleException>(() => SafePickleValidator.Validate(Bytes(0x80, 2, 0xff), "f")).Message);
        Assert.Contains("unexpected end", Assert.Throws<UnsafePickleException>(() => SafePickleValidator.Validate(Bytes(0x80, 2, "X", 50, 0, 0, 0, "ab"), "f")).Message);
    }
}
