namespace MaeMl.Model;

/// <summary>
/// Width and height in pixels of a model's input images (as ML.NET's <c>ResizeImages(width, height)</c> takes them, and as a folder
/// name such as <c>camvid_160x120</c> writes them). An <see cref="int"/> converts to the square size side x side.
/// </summary>
/// <param name="Width">Columns W.</param>
/// <param name="Height">Rows H.</param>
public readonly record struct InputSize(int Width, int Height)
{
    /// <summary>The square size <paramref name="side"/> x <paramref name="side"/>.</summary>
    public static implicit operator InputSize(int side) => new(side, side);

    /// <summary>Width equals height.</summary>
    public bool IsSquare => Width == Height;

    /// <summary>Pixels of one plane, W * H.</summary>
    public int Pixels => Width * Height;

    /// <summary><c>WxH</c>, e.g. <c>160x120</c>.</summary>
    public override string ToString() => $"{Width}x{Height}";
}
