using System.Buffers.Binary;
using System.IO.Compression;
using MaeMl.Data;
using Xunit;

namespace MaeMl.Tests.Data;

/// <summary>Tiny image files that declare enormous pixel counts (issue 11): refused from the header, before any pixel memory.</summary>
public class HostileImageTests
{
    static uint Crc(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    static void Chunk(Stream s, string type, byte[] body)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)body.Length);
        s.Write(len);
        var typed = System.Text.Encoding.ASCII.GetBytes(type).Concat(body).ToArray();
        s.Write(typed);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc(typed));
        s.Write(crc);
    }

    /// <summary>A valid PNG header declaring width x height RGB pixels, with a few bytes of image data (a "PNG bomb").</summary>
    public static string PngBomb(string dir, int width, int height)
    {
        var path = Path.Combine(dir, $"bomb-{width}x{height}.png");
        using var s = File.Create(path);
        s.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = 8; ihdr[9] = 2;
        Chunk(s, "IHDR", ihdr);
        using var idat = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionLevel.SmallestSize, leaveOpen: true)) z.Write(new byte[4096]);
        Chunk(s, "IDAT", idat.ToArray());
        Chunk(s, "IEND", []);
        return path;
    }

    [Fact]
    public void ImagesAboveThePixelLimitAreRefusedFromTheirHeader()
    {
        var dir = TestImages.TempDir("bomb");
        // 81 MP: above the 64 MP default (decoding it would take 324 MB)
        var big = PngBomb(dir, 9000, 9000);
        Assert.True(new FileInfo(big).Length < 1000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeBitmap(big).Dispose());
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
        Assert.Contains("bomb-9000x9000.png", ex.Message);
        Assert.Contains("9000x9000", ex.Message);
        Assert.Contains("pixel limit", ex.Message);

        // 10^10 pixels: decoding it would abort the process
        var huge = PngBomb(dir, 100_000, 100_000);
        Assert.Contains("pixel limit", Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeBitmap(huge).Dispose()).Message);

        // the limit is configurable per call
        var small = TestImages.Write(dir, 1, size: 32)[0];
        ImageDecoder.DecodeBitmap(small).Dispose();
        Assert.Contains("pixel limit", Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeBitmap(small, maxPixels: 1000).Dispose()).Message);
    }
}
