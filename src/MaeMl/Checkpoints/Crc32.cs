namespace MaeMl.Checkpoints;

/// <summary>CRC-32 (IEEE 802.3, the zip and PNG polynomial), incrementally: <c>crc = Crc32.Update(crc, bytes)</c> from
/// <see cref="Initial"/>, then <see cref="Final"/>.</summary>
internal static class Crc32
{
    public const uint Initial = 0xFFFFFFFF;

    static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        var table = Table;
        foreach (var b in data) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    public static uint Final(uint crc) => ~crc;

    /// <summary>The CRC-32 of <paramref name="data"/>.</summary>
    public static uint Of(ReadOnlySpan<byte> data) => Final(Update(Initial, data));
}
